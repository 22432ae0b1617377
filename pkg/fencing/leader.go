package fencing

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// LeaseName is the coordination.k8s.io Lease the controller replicas elect their leader
// with.
const LeaseName = "localnvme-fencing"

// Election configures leader election.
type Election struct {
	Client    kubernetes.Interface
	Namespace string
	Identity  string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go leaderelection: a
	// killed leader is replaced at most LeaseDuration (+ RetryPeriod) after its last renew.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunElected runs lead while this replica holds the Lease. It returns when ctx ends (after
// releasing the Lease, so a rolling update hands over at once) or when leadership is lost
// (lead's context is cancelled first); the caller should then exit, as a replica that lost
// its lease may hold a stale view.
func RunElected(ctx context.Context, e Election, lead func(ctx context.Context)) error {
	if e.Identity == "" || e.Namespace == "" {
		return fmt.Errorf("leader election needs an identity and a namespace")
	}
	logger := klog.FromContext(ctx).WithValues("lease", e.Namespace+"/"+LeaseName, "identity", e.Identity)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: LeaseName},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				logger.Info("Leading: the fencing controller runs here")
				lead(klog.NewContext(ctx, logger))
			},
			OnStoppedLeading: func() { logger.Info("Not leading any more") },
			OnNewLeader: func(id string) {
				if id != e.Identity {
					logger.Info("Following", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	if ctx.Err() == nil {
		return fmt.Errorf("lost the lease %s/%s", e.Namespace, LeaseName)
	}
	return nil
}
