package volume

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/lvm"
)

// maxFenceReason bounds the reason stored in the lnv.fenced tag: base64url grows it by 4/3
// and an LVM tag holds at most lvm.MaxTagLen characters.
const maxFenceReason = (lvm.MaxTagLen - len(TagFenced) - 1) * 3 / 4

// Fence tags a volume's LV lnv.fenced=<base64url(reason)>: from then on the node refuses to
// stage, publish, expand, clone or snapshot it (ErrPrecondition, see usable), and only
// DeleteVolume removes it. It is called for PVs the fencing controller released, whose
// claims are re-created elsewhere: the old LV must never be handed to a workload again.
// Idempotent: an LV already fenced is left as it is (the first reason stays). The volume is
// resolved on a fresh report, so an ID that does not name this very LV is ErrNotFound or
// ErrPrecondition as in Resolve, and nothing is tagged.
func (e *Engine) Fence(ctx context.Context, id, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return fmt.Errorf("%w: fencing volume %s: a reason is required", ErrInvalid, id)
	}
	pid, err := ParseID(id, KindVolume)
	if err != nil {
		return fmt.Errorf("%w: volume %q: %v", ErrNotFound, id, err)
	}
	unlock, err := e.locks.Lock(ctx, pid.LVName)
	if err != nil {
		return err
	}
	defer unlock()
	v, err := e.ResolveFresh(ctx, id, KindVolume)
	if err != nil {
		return err
	}
	if v.Fenced != "" {
		return nil
	}
	tag, reason := fenceTag(reason)
	if err := e.lvm.AddTags(ctx, v.Class.VolumeGroup, v.LV.Name, []string{tag}); err != nil {
		return wrapLVM(err, "fencing %s/%s", v.Class.VolumeGroup, v.LV.Name)
	}
	klog.FromContext(ctx).Info("Volume fenced", "volumeID", id, "lv", v.Class.VolumeGroup+"/"+v.LV.Name, "reason", reason)
	return nil
}

// fenceTag is the lnv.fenced tag that records reason, and the reason it records: reason
// cut to maxFenceReason bytes (on a character boundary), so that the tag fits lvm.MaxTagLen.
func fenceTag(reason string) (tag, recorded string) {
	if len(reason) > maxFenceReason {
		reason = truncateUTF8(reason, maxFenceReason)
	}
	return Tag(TagFenced, EncodeName(reason)), reason
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// usable refuses a fenced volume for every call that would give a workload its data or
// change it. The message starts with "fenced: " (kubelet and the provisioner show it in
// the claim's and the pod's events).
func (v *Volume) usable() error {
	if v.Fenced == "" {
		return nil
	}
	return errorfKind(ErrPrecondition, "fenced: %s; this LV is removed only by DeleteVolume of its PV", v.Fenced)
}

// ResolveUsable is Resolve (on a fresh report when fresh is set) for the node calls that
// give a workload the volume's data or change it: NodeStageVolume, NodePublishVolume,
// NodeExpandVolume. A fenced volume is ErrPrecondition. Unstage, unpublish, stats, health
// and DeleteVolume use Resolve and keep working on it.
func (e *Engine) ResolveUsable(ctx context.Context, id string, fresh bool) (*Volume, error) {
	v, err := e.resolve(ctx, id, KindVolume, fresh)
	if err != nil {
		return nil, err
	}
	if err := v.usable(); err != nil {
		return nil, err
	}
	return v, nil
}

// ClassVG is a configured class with the volume group of its name as LVM reports it now.
type ClassVG struct {
	Class string
	// VGUUID is the UUID (without dashes, as in IDs) of the VG named like the class's
	// volume group, "" when there is none.
	VGUUID   string
	Ready    bool
	Problems []string
}

// ClassVGs reports every configured class (sorted by name) with its VG's UUID, from one
// fresh LVM report: what the node publishes as its incarnation.
func (e *Engine) ClassVGs(ctx context.Context) ([]ClassVG, error) {
	e.lvm.Invalidate()
	rep, err := e.lvm.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading LVM state: %w", err)
	}
	classes := e.Classes()
	out := make([]ClassVG, 0, len(classes))
	e.classMu.RLock()
	defer e.classMu.RUnlock()
	for _, c := range classes {
		cv := ClassVG{Class: c.Name, Ready: c.Ready, Problems: append([]string(nil), c.Problems...)}
		if vg := rep.VGByName(c.VolumeGroup); vg != nil {
			cv.VGUUID = StripUUID(vg.UUID)
		}
		out = append(out, cv)
	}
	return out, nil
}
