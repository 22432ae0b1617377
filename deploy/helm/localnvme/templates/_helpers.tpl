{{/*
Object names are fixed, as in the kustomize install: the driver is cluster-wide (CSIDriver
localnvme.io, ClusterRoles), one install per cluster, and the docs, the kubectl plugin and
the e2e tests refer to these names.
*/}}

{{/* The CSI driver name (fixed: volume IDs, topology keys and parameters carry it). */}}
{{- define "localnvme.driverName" -}}
localnvme.io
{{- end -}}

{{/* helm.sh/chart label value. */}}
{{- define "localnvme.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object: app.kubernetes.io/name (as in the kustomize install) and Helm's.
*/}}
{{- define "localnvme.labels" -}}
app.kubernetes.io/name: localnvme
helm.sh/chart: {{ include "localnvme.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Selector labels of a workload ("node" or "controller"): exactly those of the kustomize
install, so its DaemonSet and Deployment can be taken over (selectors are immutable) and the
PodMonitor, the kubectl plugin and the tests find the pods.
usage: include "localnvme.selectorLabels" "node"
*/}}
{{- define "localnvme.selectorLabels" -}}
app.kubernetes.io/name: localnvme
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* Labels of a component's objects. usage: include "localnvme.componentLabels" (list $ "node") */}}
{{- define "localnvme.componentLabels" -}}
{{ include "localnvme.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
An image reference from images.<name>. The localnvme image's empty tag means appVersion.
usage: include "localnvme.image" (list $ "provisioner")
*/}}
{{- define "localnvme.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $img := index $root.Values.images $name -}}
{{- $tag := $img.tag | default (eq $name "localnvme" | ternary $root.Chart.AppVersion "") -}}
{{- if not $tag -}}
{{- fail (printf "images.%s.tag must be set" $name) -}}
{{- end -}}
{{- printf "%s:%s" $img.repository (toString $tag) -}}
{{- end -}}

{{/* image and imagePullPolicy lines of a container. usage: include "localnvme.imageLines" (list $ "resizer") */}}
{{- define "localnvme.imageLines" -}}
{{- $img := index (index . 0).Values.images (index . 1) -}}
image: {{ include "localnvme.image" . }}
imagePullPolicy: {{ $img.pullPolicy }}
{{- end -}}

{{/* The namespace of every namespaced object: the release's. */}}
{{- define "localnvme.namespace" -}}
{{- if and .Values.namespace.create (has .Release.Namespace (list "default" "kube-system" "kube-public" "kube-node-lease")) -}}
{{- fail (printf "namespace.create is true and the release namespace is %q: the chart would relabel that namespace for privileged pods. Install into its own namespace (helm install localnvme <chart> -n localnvme-system --create-namespace), or set namespace.create=false" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/*
The security context of the non-root node sidecars: in the CSI socket's group.
*/}}
{{- define "localnvme.socketGroupSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.nonRootUser }}
runAsGroup: {{ .Values.csiSocketGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The node plugin's CSI socket as kubelet and the registrar see it. */}}
{{- define "localnvme.kubeletSocket" -}}
{{- printf "%s/plugins/%s/csi.sock" (trimSuffix "/" .Values.kubeletDir) (include "localnvme.driverName" .) -}}
{{- end -}}

{{/* The device-class configuration file (config.yaml of the ConfigMap). */}}
{{- define "localnvme.config" -}}
{{- if not .Values.deviceClasses -}}
{{- fail "deviceClasses is empty: the node plugin needs at least one device class (deploy/config/device-classes.yaml shows every option)" -}}
{{- end -}}
{{- dict "deviceClasses" .Values.deviceClasses | toYaml -}}
{{- end -}}
