package nodesync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/driver"
	"github.com/localnvme/localnvme/pkg/fenceapi"
	"github.com/localnvme/localnvme/pkg/metrics"
	"github.com/localnvme/localnvme/pkg/volume"
)

// Defaults of Options.
const (
	DefaultResync    = 5 * time.Minute
	DefaultOrphanAge = 10 * time.Minute
)

// Options configure a Sync.
type Options struct {
	Client kubernetes.Interface
	// Node is this node's name (the driver's node ID, the value of the PVs' node affinity).
	Node   string
	Engine Engine
	Events Recorder
	// Registerer gets the localnvme_orphan_volumes gauge (nil: not exported).
	Registerer prometheus.Registerer
	// Resync is the PV informer's resync period and the orphan scan interval.
	Resync time.Duration
	// OrphanAge is how old an LV no PV names must be before it counts as an orphan: a PV is
	// created right after CreateVolume returns, so a younger one may be in provisioning.
	OrphanAge time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Sync watches PVs: it fences the LVs of this node's PVs marked fenceapi.AnnotationFenced
// and reports orphan LVs. Create it with NewSync and run it with Run.
type Sync struct {
	o       Options
	queue   workqueue.TypedRateLimitingInterface[string]
	orphans *prometheus.GaugeVec

	mu        sync.Mutex
	lister    corelisters.PersistentVolumeLister
	firstSeen map[string]time.Time // orphans whose LV reports no creation time
	reported  map[string]bool      // orphans already reported by an Event
}

// NewSync checks the options and registers the orphan gauge.
func NewSync(o Options) (*Sync, error) {
	if o.Client == nil || o.Node == "" || o.Engine == nil || o.Events == nil {
		return nil, errors.New("nodesync: Client, Node, Engine and Events are required")
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	if o.OrphanAge <= 0 {
		o.OrphanAge = DefaultOrphanAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sync{
		o: o,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "localnvme-fence"}),
		orphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace,
			Name:      "orphan_volumes",
			Help:      "LVs of this driver in a ready device class that no PV names and that are older than the orphan age (10 min). They are kept, never deleted.",
		}, []string{"class"}),
		firstSeen: map[string]time.Time{},
		reported:  map[string]bool{},
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(s.orphans); err != nil {
			return nil, fmt.Errorf("registering localnvme_orphan_volumes: %w", err)
		}
	}
	return s, nil
}

// Run starts the PV informer and, once it has synced (nothing is done before), fences and
// scans for orphans until ctx ends. Failed fences are retried with a rate-limited backoff,
// and every PV again at each resync.
func (s *Sync) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("nodesync")
	ctx = klog.NewContext(ctx, logger)
	factory := informers.NewSharedInformerFactory(s.o.Client, s.o.Resync)
	pvs := factory.Core().V1().PersistentVolumes()
	informer := pvs.Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.enqueue,
		UpdateFunc: func(_, obj any) { s.enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("watching PVs: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer s.queue.ShutDown()

	logger.V(2).Info("Waiting for the PV informer to sync")
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return ctx.Err()
	}
	s.mu.Lock()
	s.lister = pvs.Lister() // set once synced: until then fence and the orphan scan do nothing
	s.mu.Unlock()
	logger.Info("PV informer synced: fencing released volumes and watching for orphans")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait.UntilWithContext(ctx, s.scanOrphans, s.o.Resync)
	}()
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for s.processNext(ctx) {
	}
	wg.Wait()
	return ctx.Err()
}

// enqueue adds PVs that are fenced and this node's; the worker checks again.
func (s *Sync) enqueue(obj any) {
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok || !s.fenceCandidate(pv) {
		return
	}
	s.queue.Add(pv.Name)
}

// fenceCandidate: a PV of this driver, with node affinity to this node, marked fenced.
func (s *Sync) fenceCandidate(pv *corev1.PersistentVolume) bool {
	return ours(pv) && onNode(pv, s.o.Node) && fenceapi.IsFenced(pv.Annotations)
}

func ours(pv *corev1.PersistentVolume) bool {
	return pv.Spec.CSI != nil && pv.Spec.CSI.Driver == driver.DriverName && pv.Spec.CSI.VolumeHandle != ""
}

// onNode reports whether the PV's required node affinity names node under the driver's
// topology key (what the provisioner writes from the volume's accessible topology).
func onNode(pv *corev1.PersistentVolume, node string) bool {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return false
	}
	for _, term := range na.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == driver.TopologyKey && e.Operator == corev1.NodeSelectorOpIn && slices.Contains(e.Values, node) {
				return true
			}
		}
	}
	return false
}

func (s *Sync) processNext(ctx context.Context) bool {
	name, shutdown := s.queue.Get()
	if shutdown {
		return false
	}
	defer s.queue.Done(name)
	if err := s.fence(ctx, name); err != nil {
		klog.FromContext(ctx).Error(err, "Fencing failed; retrying", "pv", name, "retries", s.queue.NumRequeues(name))
		s.queue.AddRateLimited(name)
		return true
	}
	s.queue.Forget(name)
	return true
}

// fence tags the LV of a fenced PV of this node, when its volume handle resolves here
// (same VG and LV UUIDs), and records a VolumeFenced Event. A handle that does not resolve
// has nothing to fence.
func (s *Sync) fence(ctx context.Context, name string) error {
	logger := klog.FromContext(ctx).WithValues("pv", name)
	s.mu.Lock()
	lister := s.lister
	s.mu.Unlock()
	if lister == nil {
		return errors.New("PV informer not synced yet")
	}
	pv, err := lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.fenceCandidate(pv) {
		return nil
	}
	id, reason := pv.Spec.CSI.VolumeHandle, pv.Annotations[fenceapi.AnnotationFenced]
	logger = logger.WithValues("volumeID", id)
	v, err := s.o.Engine.Resolve(ctx, id, volume.KindVolume)
	switch {
	case errors.Is(err, volume.ErrNotFound):
		logger.V(2).Info("Fenced PV's volume does not exist on this node: nothing to fence", "reason", err.Error())
		return nil
	case errors.Is(err, volume.ErrPrecondition):
		logger.Info("Fenced PV's volume ID names an LV that was re-created: nothing of this PV to fence", "reason", err.Error())
		return nil
	case err != nil:
		return err
	case v.Fenced != "":
		return nil // fenced before (by this process or an earlier one)
	}
	err = s.o.Engine.Fence(ctx, id, reason)
	switch {
	case errors.Is(err, volume.ErrNotFound), errors.Is(err, volume.ErrPrecondition):
		logger.V(2).Info("Fenced PV's volume went away: nothing to fence", "reason", err.Error())
		return nil
	case err != nil:
		return err
	}
	claim := ""
	if ref := pv.Spec.ClaimRef; ref != nil {
		claim = ref.Namespace + "/" + ref.Name
	}
	lv := v.Class.VolumeGroup + "/" + v.LV.Name
	s.o.Events.VolumeFenced(pv.Name, claim, lv, reason)
	logger.Info("Fenced the LV of a released PV", "lv", lv, "claim", claim, "reason", reason)
	return nil
}

// scanOrphans counts and reports the orphans: LVs of this driver's volumes in ready classes
// that no PV (of any node) names, older than OrphanAge by their LV creation time — or, when
// LVM reports none, seen as orphans by this process for OrphanAge. A thick clone whose copy
// is not complete is still being created and never counts. Each orphan gets one Warning
// Event per process; nothing is deleted. It does nothing before the informer has synced.
func (s *Sync) scanOrphans(ctx context.Context) {
	logger := klog.FromContext(ctx)
	s.mu.Lock()
	lister := s.lister
	s.mu.Unlock()
	if lister == nil {
		return
	}
	vols, err := s.o.Engine.List(ctx, volume.KindVolume)
	if err != nil {
		logger.Error(err, "Listing volumes for the orphan scan; retrying at the next resync")
		return
	}
	pvs, err := lister.List(everything)
	if err != nil {
		logger.Error(err, "Listing PVs for the orphan scan; retrying at the next resync")
		return
	}
	named := map[string]bool{}
	for _, pv := range pvs {
		if ours(pv) {
			named[pv.Spec.CSI.VolumeHandle] = true
		}
	}
	now := s.o.Now()
	counts := map[string]int{}
	for _, c := range s.o.Engine.Classes() {
		if c.Ready {
			counts[c.Name] = 0
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, v := range vols {
		id := v.ID.String()
		if named[id] || v.Copying || v.Zeroing {
			continue
		}
		seen[id] = true
		var age time.Duration
		if !v.LV.Created.IsZero() {
			age = now.Sub(v.LV.Created)
		} else {
			if _, ok := s.firstSeen[id]; !ok {
				s.firstSeen[id] = now
			}
			age = now.Sub(s.firstSeen[id])
		}
		if age < s.o.OrphanAge {
			continue
		}
		counts[v.Class.Name]++
		if !s.reported[id] {
			s.reported[id] = true
			lv := v.Class.VolumeGroup + "/" + v.LV.Name
			s.o.Events.OrphanVolume(id, lv, age)
			logger.Info("Orphan volume: no PV names this LV; keeping it", "volumeID", id, "lv", lv, "age", age.Round(time.Second))
		}
	}
	for id := range s.firstSeen {
		if !seen[id] {
			delete(s.firstSeen, id)
		}
	}
	s.orphans.Reset()
	for class, n := range counts {
		s.orphans.WithLabelValues(class).Set(float64(n))
	}
}

var everything = labels.Everything()
