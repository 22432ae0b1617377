package disk

import (
	"context"
	"fmt"
	"strings"
)

// Wipe erases every signature blkid can see on a device (wipefs -a): partition tables,
// filesystem, RAID and LVM labels. It exists for the operator's explicit forced adoption
// (`localnvme disks adopt --force-wipe <identity>`) and is never called on the driver's own
// paths. Callers must have checked that the device is not mounted, held or used as swap.
func (p *Prober) Wipe(ctx context.Context, devPath string) error {
	cmd := p.exec().CommandContext(ctx, "wipefs", "-a", devPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("wipefs -a %s: %w: %s", devPath, err, strings.TrimSpace(string(out)))
	}
	return nil
}
