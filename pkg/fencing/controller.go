// Package fencing is the cluster-level node-loss controller of `localnvme controller`. It
// watches Nodes, this driver's PVs, their claims and StorageClasses, and for every PV
// decides (Decide, a pure decision table) whether its node is lost — deleted, tainted
// node.kubernetes.io/out-of-service, or back with another volume group than the one the
// volume lives on — and what the PV's node-loss policy does about it: mark and report
// (keep), or after the delay delete the claim and its stuck pods so the workload re-creates
// it on a healthy node (release), fencing the PV first.
//
// It holds no state of its own: what it decided is written on the PV as annotations
// (pkg/fenceapi), every decision is an Event on the PV and its claim, and it acts only on a
// fully synced view. Writes carry preconditions (the PV's resourceVersion, the claim's and
// pods' UIDs), so a decision taken on a stale view, or twice, fails instead of acting.
package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/localnvme/localnvme/pkg/fenceapi"
)

// nodeIndex indexes this driver's PVs by the node their affinity names.
const nodeIndex = "localnvme-node"

// Options configure a Controller.
type Options struct {
	Client   kubernetes.Interface
	Recorder record.EventRecorder
	// Clock defaults to the real clock (tests pass a fake one).
	Clock clock.WithTicker
	// Resync is the informers' resync period (default 5m): every PV is looked at again
	// at least that often.
	Resync time.Duration
}

// Controller is the node-loss controller.
type Controller struct {
	client  kubernetes.Interface
	rec     record.EventRecorder
	clock   clock.WithTicker
	factory informers.SharedInformerFactory
	nodes   corelisters.NodeLister
	pvs     corelisters.PersistentVolumeLister
	pvIdx   cache.Indexer
	pvcs    corelisters.PersistentVolumeClaimLister
	scs     storagelisters.StorageClassLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
}

// New builds the controller and registers its informers' handlers; Run starts them.
func New(o Options) (*Controller, error) {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Resync == 0 {
		o.Resync = 5 * time.Minute
	}
	f := informers.NewSharedInformerFactory(o.Client, o.Resync)
	nodeInf := f.Core().V1().Nodes()
	pvInf := f.Core().V1().PersistentVolumes()
	pvcInf := f.Core().V1().PersistentVolumeClaims()
	scInf := f.Storage().V1().StorageClasses()
	c := &Controller{
		client: o.Client, rec: o.Recorder, clock: o.Clock, factory: f,
		nodes: nodeInf.Lister(), pvs: pvInf.Lister(), pvIdx: pvInf.Informer().GetIndexer(),
		pvcs: pvcInf.Lister(), scs: scInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 2*time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "localnvme-fencing", Clock: o.Clock}),
	}
	if err := pvInf.Informer().AddIndexers(cache.Indexers{nodeIndex: func(obj any) ([]string, error) {
		pv, ok := obj.(*corev1.PersistentVolume)
		if !ok {
			return nil, nil
		}
		if v, ours, _ := ParseVolume(pv); ours && v.Node != "" {
			return []string{v.Node}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("PV index: %w", err)
	}
	pvHandler := func(obj any) {
		if pv, ok := unwrap(obj).(*corev1.PersistentVolume); ok {
			if _, ours, _ := ParseVolume(pv); ours {
				c.queue.Add(pv.Name)
			}
		}
	}
	nodeHandler := func(obj any) {
		if n, ok := unwrap(obj).(*corev1.Node); ok {
			c.enqueueNode(n.Name)
		}
	}
	pvcHandler := func(obj any) {
		if pvc, ok := unwrap(obj).(*corev1.PersistentVolumeClaim); ok && pvc.Spec.VolumeName != "" {
			c.queue.Add(pvc.Spec.VolumeName)
		}
	}
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		fn  func(any)
	}{{pvInf.Informer(), pvHandler}, {nodeInf.Informer(), nodeHandler}, {pvcInf.Informer(), pvcHandler}} {
		fn := h.fn
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    fn,
			UpdateFunc: func(_, obj any) { fn(obj) },
			DeleteFunc: fn,
		}); err != nil {
			return nil, fmt.Errorf("event handler: %w", err)
		}
		c.synced = append(c.synced, h.inf.HasSynced)
	}
	c.synced = append(c.synced, scInf.Informer().HasSynced)
	return c, nil
}

func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (c *Controller) enqueueNode(node string) {
	objs, err := c.pvIdx.ByIndex(nodeIndex, node)
	if err != nil {
		return
	}
	for _, o := range objs {
		c.queue.Add(o.(*corev1.PersistentVolume).Name)
	}
}

// Synced reports whether every informer has synced (nothing is decided before).
func (c *Controller) Synced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// Run starts the informers and workers and blocks until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	defer c.factory.Shutdown()
	logger.Info("Fencing controller: waiting for informers to sync")
	if !c.Start(ctx) {
		logger.Info("Fencing controller: stopped before the informers synced")
		return
	}
	logger.Info("Fencing controller: informers synced, watching nodes and volumes")
	for i := 0; i < workers; i++ {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
}

// Start starts the informers and waits for them to sync (false: ctx ended first).
func (c *Controller) Start(ctx context.Context) bool {
	c.factory.Start(ctx.Done())
	return cache.WaitForCacheSync(ctx.Done(), c.synced...)
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	after, err := c.Sync(ctx, name)
	switch {
	case err != nil:
		klog.FromContext(ctx).Error(err, "Fencing: will retry", "pv", name)
		c.queue.AddRateLimited(name)
	case after > 0:
		c.queue.Forget(name)
		c.queue.AddAfter(name, after)
	default:
		c.queue.Forget(name)
	}
	return true
}

// errNotSynced: the view is partial; nothing is decided.
var errNotSynced = errors.New("informers not synced: no decision on a partial view")

// Sync takes the decision for one PV and carries it out. It returns when to look again.
func (c *Controller) Sync(ctx context.Context, name string) (time.Duration, error) {
	if !c.Synced() {
		return 0, errNotSynced
	}
	logger := klog.FromContext(ctx).WithValues("pv", name)
	pv, err := c.pvs.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	v, ours, err := ParseVolume(pv)
	if !ours {
		return 0, nil
	}
	if err != nil {
		logger.V(2).Info("Fencing: not a volume this controller can judge", "reason", err)
		return 0, nil
	}
	in := Input{PV: pv, Now: c.clock.Now()}
	if in.Node, err = c.nodes.Get(v.Node); apierrors.IsNotFound(err) {
		in.Node = nil
	} else if err != nil {
		return 0, err
	}
	if ref := pv.Spec.ClaimRef; ref != nil {
		if in.Claim, err = c.pvcs.PersistentVolumeClaims(ref.Namespace).Get(ref.Name); apierrors.IsNotFound(err) {
			in.Claim = nil
		} else if err != nil {
			return 0, err
		}
	}
	in.Policy, in.PolicyErr = c.policy(pv)
	plan := Decide(in, v)
	return plan.RequeueAfter, c.execute(ctx, pv, v, in.Claim, plan)
}

// policy reads the PV's node-loss policy from its volumeAttributes (CreateVolume writes it
// there), else from its StorageClass's parameters, else the default (keep).
func (c *Controller) policy(pv *corev1.PersistentVolume) (fenceapi.Policy, error) {
	attrs := pv.Spec.CSI.VolumeAttributes
	if _, ok := attrs[fenceapi.ParamOnNodeLoss]; ok {
		return fenceapi.ParsePolicy(attrs)
	}
	if pv.Spec.StorageClassName != "" {
		if sc, err := c.scs.Get(pv.Spec.StorageClassName); err == nil {
			return fenceapi.ParsePolicy(sc.Parameters)
		}
	}
	return fenceapi.DefaultPolicy, nil
}

// execute carries out a plan: the PV annotations first (with the PV's resourceVersion as
// precondition, so a plan made on a stale view fails with Conflict and is retried on a
// fresh one), then the Events, then the release.
func (c *Controller) execute(ctx context.Context, pv *corev1.PersistentVolume, v Volume, claim *corev1.PersistentVolumeClaim, p Plan) error {
	logger := klog.FromContext(ctx).WithValues("pv", pv.Name, "node", v.Node)
	if len(p.Annotations) > 0 {
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": pv.ResourceVersion,
			"annotations":     p.Annotations,
		}})
		if err != nil {
			return err
		}
		if _, err := c.client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("annotating PV %s: %w", pv.Name, err)
		}
	}
	if claim != nil && (pv.Spec.ClaimRef == nil || claim.UID != pv.Spec.ClaimRef.UID) {
		claim = nil // a claim of the same name that is not this PV's: no Events on it
	}
	for _, e := range p.Events {
		logger.Info("Fencing decision", "reason", e.Reason, "message", e.Message)
		c.event(pv, claim, e)
	}
	if !p.Release {
		return nil
	}
	return c.release(ctx, pv, v, claim, p)
}

// release deletes the claim with a UID precondition, then the pods that hold it and cannot
// run. The PV is already fenced. A claim replaced meanwhile survives (Conflict).
func (c *Controller) release(ctx context.Context, pv *corev1.PersistentVolume, v Volume, claim *corev1.PersistentVolumeClaim, p Plan) error {
	logger := klog.FromContext(ctx).WithValues("pv", pv.Name, "node", v.Node)
	ref := pv.Spec.ClaimRef
	uid := ref.UID
	if claim.DeletionTimestamp == nil {
		err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid},
		})
		switch {
		case apierrors.IsNotFound(err):
			logger.Info("Fencing: the claim was already gone", "claim", ref.Namespace+"/"+ref.Name)
			return nil
		case apierrors.IsConflict(err):
			c.event(pv, nil, Event{corev1.EventTypeWarning, fenceapi.ReasonSkipped,
				fmt.Sprintf("not releasing: claim %s/%s was replaced between the decision and the delete (UID precondition %s failed): the new claim is not touched", ref.Namespace, ref.Name, uid)})
			return nil
		case err != nil:
			return fmt.Errorf("deleting claim %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		c.event(pv, claim, Event{corev1.EventTypeWarning, fenceapi.ReasonReleased,
			fmt.Sprintf("released: deleted claim %s/%s (UID %s) because %s; its workload can re-create it on a healthy node. The PV is fenced (%s) and left to its reclaim policy",
				ref.Namespace, ref.Name, uid, p.Why, fenceapi.AnnotationFenced)})
	}
	pods, err := c.client.CoreV1().Pods(ref.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods of claim %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !usesClaim(pod, ref.Name) || (pod.Spec.NodeName != "" && pod.Spec.NodeName != v.Node) {
			continue
		}
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
		if p.Trigger != fenceapi.TriggerVolumeLost {
			// No kubelet will confirm the deletion of a pod on a deleted or shut-down node.
			opts.GracePeriodSeconds = new(int64)
		}
		err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opts)
		switch {
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			continue
		case err != nil:
			return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		msg := fmt.Sprintf("deleted: it holds claim %s, released by the node-loss policy (%s), and cannot run", ref.Name, p.Why)
		logger.Info("Fencing: pod deleted", "pod", pod.Namespace+"/"+pod.Name)
		if c.rec != nil {
			c.rec.Event(pod, corev1.EventTypeNormal, fenceapi.ReasonPodDeleted, msg)
		}
	}
	return nil
}

func usesClaim(pod *corev1.Pod, claim string) bool {
	for _, vol := range pod.Spec.Volumes {
		if vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

// event records e on the PV and, when there is one, on its claim.
func (c *Controller) event(pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim, e Event) {
	if c.rec == nil {
		return
	}
	c.rec.Event(pv, e.Type, e.Reason, e.Message)
	if claim != nil {
		c.rec.Event(claim, e.Type, e.Reason, fmt.Sprintf("%s (volume %s)", e.Message, pv.Name))
	}
}
