package events

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/disk"
	"github.com/localnvme/localnvme/pkg/volume"
)

func TestClassSetupEvents(t *testing.T) {
	client := fake.NewSimpleClientset()
	r, stop := New(client, "worker-1")
	defer stop()
	nvme1 := disk.Namespace{Name: "nvme1n1", DevPath: "/dev/nvme1n1", Serial: "S1", NSID: 1}
	nvme2 := disk.Namespace{Name: "nvme2n1", DevPath: "/dev/nvme2n1", Serial: "S2", NSID: 1}
	r.ClassSetup([]*volume.Class{
		{DeviceClass: config.DeviceClass{Name: "fast", VolumeGroup: "vg-fast"}, Ready: true, Members: []disk.Namespace{nvme2}},
		{DeviceClass: config.DeviceClass{Name: "slow", VolumeGroup: "vg-slow"}, Problems: []string{`device /dev/nvme1n1 (serial:s1/ns1): refused: signature: TYPE="ext4"`},
			Refused: []volume.RefusedDrive{{Namespace: nvme1, Codes: []string{"signature"}, BlocksClass: true}}},
	})
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		list, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, e := range list.Items {
			if e.InvolvedObject.Kind != "Node" || e.InvolvedObject.Name != "worker-1" || e.Source.Component != "localnvme-node" {
				t.Errorf("event on the wrong object: %+v", e.InvolvedObject)
			}
			got = append(got, e.Type+" "+e.Reason+": "+e.Message)
		}
		if len(got) == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Strings(got)
	want := []string{
		"Normal DeviceClassReady: device class fast ready: volume group vg-fast on 1 drive(s)",
		"Warning DeviceClassRefused: device class slow refused, no volumes can be provisioned in it: device /dev/nvme1n1 (serial:s1/ns1): refused: signature: TYPE=\"ext4\"",
		"Warning DriveRefused: device class slow did not adopt /dev/nvme1n1 (serial:s1/ns1, serial S1): signature",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFenceAndOrphanEvents(t *testing.T) {
	client := fake.NewSimpleClientset()
	r, stop := New(client, "worker-1")
	defer stop()
	r.VolumeFenced("pvc-123", "ns/data", "vg-fast/v0123", "released by node-loss policy at 2026-01-02T03:04:05Z: node worker-1 deleted")
	r.OrphanVolume("fast.aaaa.v0456.bbbb", "vg-fast/v0456", 42*time.Minute+10*time.Second)
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(got) < 2 {
		list, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, e := range list.Items {
			if e.InvolvedObject.Kind != "Node" || e.InvolvedObject.Name != "worker-1" {
				t.Errorf("event on the wrong object: %+v", e.InvolvedObject)
			}
			got = append(got, e.Type+" "+e.Reason+": "+e.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sort.Strings(got)
	want := []string{
		"Warning OrphanVolume: LV vg-fast/v0456 (volume fast.aaaa.v0456.bbbb, at least 42m0s old) is a localnvme volume that no PV names; it is kept: check that no PV should own it, then remove it with lvremove vg-fast/v0456",
		"Warning VolumeFenced: fenced LV vg-fast/v0123 of PV pvc-123 (claim ns/data): released by node-loss policy at 2026-01-02T03:04:05Z: node worker-1 deleted; it is no longer staged or published here and is removed when the PV is deleted",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
