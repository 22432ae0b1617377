// Package events reports what the node plugin refused as Kubernetes Events on its Node,
// where operators look first (`kubectl describe node`).
package events

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Event reasons.
const (
	ReasonClassRefused = "DeviceClassRefused"
	ReasonDriveRefused = "DriveRefused"
	ReasonClassReady   = "DeviceClassReady"
)

// Reporter records Events on one Node.
type Reporter struct {
	rec  record.EventRecorder
	node *corev1.ObjectReference
}

// New returns a Reporter writing through client, and a function that flushes and stops it.
func New(client kubernetes.Interface, nodeName string) (*Reporter, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "localnvme-node", Host: nodeName})
	// kubelet refers to its Node with the node name as UID; do the same so the events show
	// up in `kubectl describe node`.
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: nodeName, UID: types.UID(nodeName)}
	return &Reporter{rec: rec, node: ref}, b.Shutdown
}

// NewInCluster is New with the pod's service account credentials.
func NewInCluster(nodeName string) (*Reporter, func(), error) {
	client, err := InClusterClient()
	if err != nil {
		return nil, nil, err
	}
	r, stop := New(client, nodeName)
	return r, stop, nil
}

// InClusterClient is an API client with the pod's service account credentials.
func InClusterClient() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster API config: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	return client, nil
}

// ClassSetup reports the outcome of device-class setup: a Warning for every refused class
// (with its reasons) and for every drive a class selected but did not take, a Normal event
// for every ready class.
func (r *Reporter) ClassSetup(classes []*volume.Class) {
	for _, c := range classes {
		if c.Ready {
			r.rec.Eventf(r.node, corev1.EventTypeNormal, ReasonClassReady, "device class %s ready: volume group %s on %d drive(s)", c.Name, c.VolumeGroup, len(c.Members))
		} else {
			r.rec.Eventf(r.node, corev1.EventTypeWarning, ReasonClassRefused, "device class %s refused, no volumes can be provisioned in it: %s", c.Name, strings.Join(c.Problems, "; "))
		}
		for _, d := range c.Refused {
			r.rec.Eventf(r.node, corev1.EventTypeWarning, ReasonDriveRefused, "device class %s did not adopt %s (%s, serial %s): %s", c.Name, d.DevPath, d.Identity(), d.Serial, strings.Join(d.Codes, ","))
		}
	}
}

// VolumeFenced reports that the node tagged the LV of a released PV (fenceapi.AnnotationFenced):
// it will never be staged or published again and is removed only by DeleteVolume of the PV.
func (r *Reporter) VolumeFenced(pv, claim, lv, reason string) {
	r.rec.Eventf(r.node, corev1.EventTypeWarning, fenceapi.ReasonVolumeFenced,
		"fenced LV %s of PV %s (claim %s): %s; it is no longer staged or published here and is removed when the PV is deleted", lv, pv, orNone(claim), reason)
}

// OrphanVolume reports an LV of this driver that no PV names. Nothing is deleted: the
// message says how to check and remove it.
func (r *Reporter) OrphanVolume(volumeID, lv string, age time.Duration) {
	r.rec.Eventf(r.node, corev1.EventTypeWarning, fenceapi.ReasonOrphanVolume,
		"LV %s (volume %s, at least %s old) is a localnvme volume that no PV names; it is kept: check that no PV should own it, then remove it with lvremove %s",
		lv, volumeID, age.Round(time.Minute), lv)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
