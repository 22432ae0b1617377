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
	err := writeDriveTable(&b, []volume.Drive{
		{Namespace: disk.Namespace{Name: "nvme0n1", DevPath: "/dev/nvme0n1", Serial: "A", NSID: 1, EUI64: "00a0b0c0d0e0f001"}, State: volume.DriveUnclaimed, SharesIdentityWith: []string{"nvme1n1"}},
		{Namespace: disk.Namespace{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "C", NSID: 1}, State: volume.DriveUnclaimed},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[1], "AMBIGUOUS identity, shared with nvme1n1") {
		t.Errorf("row of nvme0n1 does not flag the shared identity:\n%s", b.String())
	}
	if strings.Contains(lines[2], "AMBIGUOUS") {
		t.Errorf("row of nvme2n1 flagged:\n%s", b.String())
	}
}

func TestMetricsListenAddr(t *testing.T) {
	for _, tt := range []struct{ addr, ip, want string }{
		{":9810", "", ":9810"},
		{":9810", "10.0.2.15", "10.0.2.15:9810"},
		{"0.0.0.0:9810", "fd00::1", "[fd00::1]:9810"},
	} {
		got, err := metricsListenAddr(tt.addr, tt.ip)
		if err != nil || got != tt.want {
			t.Errorf("metricsListenAddr(%q, %q) = %q, %v; want %q", tt.addr, tt.ip, got, err, tt.want)
		}
	}
	if _, err := metricsListenAddr(":9810", "node-1"); err == nil {
		t.Error("a host name was accepted as --metrics-ip")
	}
}
