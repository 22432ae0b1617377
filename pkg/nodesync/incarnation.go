package nodesync

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/volume"
)

// DefaultPublishBackoff paces the retries of PublishIncarnation: 1 s doubling to at most
// 2 min, then every 2 min until it succeeds.
var DefaultPublishBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 8, Cap: 2 * time.Minute}

// BuildIncarnation is the annotation value for the classes as the engine reports them.
func BuildIncarnation(classes []volume.ClassVG, now time.Time) fenceapi.Incarnation {
	in := fenceapi.Incarnation{
		Version:   fenceapi.IncarnationVersion,
		Published: now.UTC().Truncate(time.Second),
		Classes:   make(map[string]fenceapi.ClassVersion, len(classes)),
	}
	for _, c := range classes {
		cv := fenceapi.ClassVersion{VGUUID: c.VGUUID, Ready: c.Ready}
		if !c.Ready {
			cv.Problem = strings.Join(c.Problems, "; ")
		}
		in.Classes[c.Class] = cv
	}
	return in
}

// incarnationPatch is a JSON merge patch that sets only the incarnation annotation.
func incarnationPatch(in fenceapi.Incarnation) ([]byte, error) {
	v, err := in.Encode()
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{fenceapi.AnnotationIncarnation: v}}})
}

// PublishIncarnation writes this node's incarnation (the VG UUID of every class, read from
// a fresh LVM report) into the annotation fenceapi.AnnotationIncarnation of the Node named
// node, with a merge patch of that one key. It retries with backoff (each failure logged)
// until it succeeds or ctx ends, and returns ctx's error in that case.
func PublishIncarnation(ctx context.Context, client kubernetes.Interface, node string, eng Engine, backoff wait.Backoff) error {
	logger := klog.FromContext(ctx).WithValues("node", node)
	for attempt := 1; ; attempt++ {
		in, err := publishOnce(ctx, client, node, eng)
		if err == nil {
			logger.Info("Published the node's incarnation", "annotation", fenceapi.AnnotationIncarnation, "classes", in.Classes)
			return nil
		}
		delay := backoff.Step()
		logger.Error(err, "Publishing the node's incarnation failed; the fencing controller cannot tell whether this node's volumes still exist until it succeeds", "attempt", attempt, "retryIn", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func publishOnce(ctx context.Context, client kubernetes.Interface, node string, eng Engine) (fenceapi.Incarnation, error) {
	classes, err := eng.ClassVGs(ctx)
	if err != nil {
		return fenceapi.Incarnation{}, err
	}
	in := BuildIncarnation(classes, time.Now())
	return in, patchIncarnation(ctx, client, node, in)
}

// patchIncarnation writes in into the Node's annotation with a merge patch of that one key.
func patchIncarnation(ctx context.Context, client kubernetes.Interface, node string, in fenceapi.Incarnation) error {
	patch, err := incarnationPatch(in)
	if err != nil {
		return fmt.Errorf("encoding the incarnation: %w", err)
	}
	if _, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patching annotation %s of Node %s: %w", fenceapi.AnnotationIncarnation, node, err)
	}
	return nil
}

// DefaultRecheck is how often KeepIncarnation reads the classes and the Node again.
const DefaultRecheck = 30 * time.Second

// KeepIncarnation publishes the incarnation (PublishIncarnation) and then keeps it current
// until ctx ends: every recheck it reads the classes from a fresh LVM report and the Node
// from the API, and patches the annotation again when what the Node carries differs from
// the classes (a volume group changed, the Node was deleted and re-registered by the kubelet
// without it, or someone edited it). A failed check is logged and retried at the next one.
// It returns ctx's error.
func KeepIncarnation(ctx context.Context, client kubernetes.Interface, node string, eng Engine, backoff wait.Backoff, recheck time.Duration) error {
	if err := PublishIncarnation(ctx, client, node, eng, backoff); err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("node", node)
	t := time.NewTicker(recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		changed, err := recheckOnce(ctx, client, node, eng)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error(err, "Checking the node's incarnation annotation failed; retrying", "retryIn", recheck)
		case changed != "":
			logger.Info("Published the node's incarnation again", "annotation", fenceapi.AnnotationIncarnation, "why", changed)
		}
	}
}

// recheckOnce patches the annotation when the Node's value differs from the classes, and says why.
func recheckOnce(ctx context.Context, client kubernetes.Interface, node string, eng Engine) (string, error) {
	classes, err := eng.ClassVGs(ctx)
	if err != nil {
		return "", err
	}
	want := BuildIncarnation(classes, time.Now())
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading Node %s: %w", node, err)
	}
	why := ""
	raw, ok := n.Annotations[fenceapi.AnnotationIncarnation]
	if !ok {
		why = "the Node has no " + fenceapi.AnnotationIncarnation + " annotation"
	} else if have, err := fenceapi.ParseIncarnation(raw); err != nil {
		why = "the Node's annotation cannot be read: " + err.Error()
	} else if !maps.Equal(have.Classes, want.Classes) {
		why = "the device classes changed"
	}
	if why == "" {
		return "", nil
	}
	if err := patchIncarnation(ctx, client, node, want); err != nil {
		return "", fmt.Errorf("%s: %w", why, err)
	}
	return why, nil
}
