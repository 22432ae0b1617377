package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/volume"
)

func TestDriveTableFlagsSharedIdentity(t *testing.T) {
	var b bytes.Buffer
	writeDriveTable(&b, []volume.Drive{
		{Namespace: disk.Namespace{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "A", NSID: 1, EUI64: "00a0b0c0d0e0f001"}, State: volume.DriveUnclaimed, SharesIdentityWith: []string{"nvme1n1"}},
		{Namespace: disk.Namespace{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "C", NSID: 1}, State: volume.DriveUnclaimed},
	})
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[1], "AMBIGUOUS identity, shared with nvme1n1") {
		t.Errorf("row of nvme0n1 does not flag the shared identity:\n%s", b.String())
	}
	if strings.Contains(lines[2], "AMBIGUOUS") {
		t.Errorf("row of nvme2n1 flagged:\n%s", b.String())
	}
}
