//go:build e2e

package e2e

// PostgreSQL workloads for the node-loss scenarios: a 1-replica StatefulSet of the image
// localnvme.local/postgres (hack/image/build.sh; E2E_POSTGRES_IMAGE overrides it) on a
// given StorageClass, SQL through the exec helper, and the initdb marker its entrypoint
// writes.

import (
	"context"
	"crypto/md5" //nolint:gosec // G501: to compare with PostgreSQL's md5() of the rows, not for security
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	defaultPostgresImage = "localnvme.local/postgres:15"
	// pgMount is where the claim is mounted; PGDATA is its pgdata subdirectory, and the
	// entrypoint appends the initdb marker to initdb.log here.
	pgMount = "/var/lib/postgresql/data"
	// initdbMarker starts the line the entrypoint prints (and appends to initdb.log) when
	// it makes a fresh database cluster.
	initdbMarker = "LOCALNVME-INITDB"
	// pgSize: a thick ext4 volume (class fast: 2 × 3 GiB per node); PostgreSQL needs ~40 MiB
	// plus 16 MiB WAL segments.
	pgSize = 512 * MiB
	// pgTimeout: provisioning, mkfs, image start and initdb (about a minute under TCG).
	pgTimeout = 8 * time.Minute
	// pgRows is how many rows each database gets.
	pgRows = 1000
	// pgChecksumSQL is the content checksum: "<count>|<md5>".
	pgChecksumSQL = `SELECT count(*), md5(string_agg(id||':'||v, ',' ORDER BY id)) FROM e2e`
)

func postgresImage() string {
	if v := os.Getenv("E2E_POSTGRES_IMAGE"); v != "" {
		return v
	}
	return defaultPostgresImage
}

// newPostgresStatefulSet is one PostgreSQL pod (container "work", so e.sh runs there) with
// the claim data-<name>-0 from sc mounted at pgMount, Ready when pg_isready answers on the
// unix socket in /tmp. The entrypoint runs as root and drops to the postgres user (uid 999)
// after making PGDATA its own, so no fsGroup or runAsUser is needed.
func newPostgresStatefulSet(name, sc string, size int64) *appsv1.StatefulSet {
	replicas := int32(1)
	grace := int64(15) // SIGINT (the image's StopSignal): fast shutdown
	noToken := false
	labels := map[string]string{"app": name}
	claim := fsPVC("data", sc, size)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  &noToken,
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:            workContainer,
						Image:           postgresImage(),
						ImagePullPolicy: corev1.PullIfNotPresent,
						VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: pgMount}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
								Command: []string{"pg_isready", "-h", "/tmp", "-U", "postgres"},
							}},
							PeriodSeconds:    10, // each exec costs seconds of an emulated node's CPU
							TimeoutSeconds:   20,
							FailureThreshold: 3,
						},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{*claim},
		},
	}
}

func (e *E) createPostgres(name, sc string) {
	e.t.Helper()
	_, err := kube.AppsV1().StatefulSets(e.ns).Create(e.ctx, newPostgresStatefulSet(name, sc, pgSize), metav1.CreateOptions{})
	e.must(err, "creating PostgreSQL statefulset %s (class %s)", name, sc)
}

// psql runs each SQL statement with psql on the pod's unix socket (one -c each, so that
// CHECKPOINT is not inside a transaction) and returns the unaligned output.
func (e *E) psql(pod string, sql ...string) (string, error) {
	return e.trySh(pod, `set -e; for q in "$@"; do psql -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq -c "$q"; done`, sql...)
}

// pgData is what a test wrote: rows id 1..Rows with v = "<Token>-<id>".
type pgData struct {
	Token string
	Rows  int
}

// Checksum is what pgChecksumSQL returns for exactly these rows.
func (d pgData) Checksum() string {
	var b strings.Builder
	for i := 1; i <= d.Rows; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%s-%d", i, d.Token, i)
	}
	return fmt.Sprintf("%d|%x", d.Rows, md5.Sum([]byte(b.String()))) //nolint:gosec // G401: PostgreSQL's md5(), a checksum
}

// pgWrite creates table e2e with rows known rows, checkpoints (everything on the volume),
// and checks the checksum it reads back.
func (e *E) pgWrite(pod string, rows int) pgData {
	e.t.Helper()
	d := pgData{Token: randomToken()[:16], Rows: rows}
	_, err := e.psql(pod,
		"CREATE TABLE e2e(id int PRIMARY KEY, v text)",
		fmt.Sprintf("INSERT INTO e2e SELECT i, '%s-' || i FROM generate_series(1, %d) AS i", d.Token, rows),
		"CHECKPOINT")
	e.must(err, "writing %d rows in pod %s", rows, pod)
	got, err := e.pgChecksum(pod)
	e.must(err, "reading the checksum in pod %s", pod)
	if got != d.Checksum() {
		e.Fatalf("pod %s: checksum %s right after writing, want %s", pod, got, d.Checksum())
	}
	return d
}

func (e *E) pgChecksum(pod string) (string, error) {
	out, err := e.psql(pod, pgChecksumSQL)
	return strings.TrimSpace(out), err
}

// initdbInfo is where a pod shows the initdb marker.
type initdbInfo struct {
	LogLines  int // marker lines in the work container's current and previous logs
	FileLines int // marker lines in initdb.log on the volume; -1 when it cannot be read
	Detail    string
}

func (i initdbInfo) Seen() bool { return i.LogLines > 0 || i.FileLines > 0 }

// initdb looks for the marker in the pod's logs and, when the pod runs, in initdb.log.
func (e *E) initdb(pod string) initdbInfo {
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	info := initdbInfo{FileLines: -1}
	var notes []string
	for _, prev := range []bool{false, true} {
		raw, err := kube.CoreV1().Pods(e.ns).GetLogs(pod, &corev1.PodLogOptions{Container: workContainer, Previous: prev}).DoRaw(ctx)
		which := "log"
		if prev {
			which = "previous log"
		}
		if err != nil {
			notes = append(notes, which+": "+oneLine(err.Error(), 120))
			continue
		}
		n := strings.Count(string(raw), initdbMarker)
		info.LogLines += n
		notes = append(notes, fmt.Sprintf("%s: %d marker lines", which, n))
	}
	p, err := kube.CoreV1().Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
	if err == nil && p.Status.Phase == corev1.PodRunning {
		out, err := e.trySh(pod, `cat "$1/initdb.log" 2>/dev/null || true`, pgMount)
		if err == nil {
			info.FileLines = strings.Count(out, initdbMarker)
			notes = append(notes, fmt.Sprintf("initdb.log: %d marker lines", info.FileLines))
		} else {
			notes = append(notes, "initdb.log: "+oneLine(err.Error(), 120))
		}
	}
	info.Detail = strings.Join(notes, "; ")
	return info
}

// neverStarted reports whether no container of the pod ever started (no running, no
// terminated state now or before, no restarts).
func neverStarted(p *corev1.Pod) bool {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil ||
			cs.RestartCount > 0 || (cs.Started != nil && *cs.Started) {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- events of any object

// objectEvents lists the events about one object, oldest first: in namespace ns, or in every
// namespace when ns is "" (a cluster-scoped object's events, such as a PV's, are in
// "default"). A non-empty uid keeps only that incarnation's events (a claim re-created under
// the same name has another UID).
func objectEvents(ctx context.Context, ns, kind, name string, uid types.UID) ([]corev1.Event, error) {
	sel := "involvedObject.kind=" + kind + ",involvedObject.name=" + name
	if uid != "" {
		sel += ",involvedObject.uid=" + string(uid)
	}
	evs, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing events of %s %s: %w", kind, name, err)
	}
	out := evs.Items
	sortEvents(out)
	return out, nil
}

func sortEvents(evs []corev1.Event) {
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
}

func eventReasons(evs []corev1.Event) map[string]corev1.Event {
	m := map[string]corev1.Event{}
	for _, ev := range evs {
		m[ev.Reason] = ev
	}
	return m
}

// waitEvents waits until the object has an event of every reason and returns the events.
func (e *E) waitEvents(ns, kind, name string, uid types.UID, timeout time.Duration, reasons ...string) []corev1.Event {
	e.t.Helper()
	var evs []corev1.Event
	what := fmt.Sprintf("events %s on %s %s", strings.Join(reasons, ", "), kind, name)
	err := waitFor(e.ctx, e, what, timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		var err error
		evs, err = objectEvents(ctx, ns, kind, name, uid)
		if err != nil {
			return false, err.Error(), nil
		}
		have := eventReasons(evs)
		var missing []string
		for _, r := range reasons {
			if _, ok := have[r]; !ok {
				missing = append(missing, r)
			}
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ",") + "; have: " + eventsLine(evs, 6), nil
	})
	if err != nil {
		e.Fatalf("%v", err)
	}
	// the operator's view, for docs/operations.md
	have := eventReasons(evs)
	for _, r := range reasons {
		ev := have[r]
		e.logf("event on %s %s: %s %s: %s", kind, name, ev.Type, ev.Reason, ev.Message)
	}
	return evs
}
