package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/nvme"
)

const pciNVMe = "devices/pci0000:00/0000:00:04.0/nvme"

// fakeSys builds a sysfs-like tree under a temp dir, laid out like the real one:
// /sys/block/<ns> and /sys/class/nvme/<ctrl> are symlinks into /sys/devices.
type fakeSys struct {
	t    *testing.T
	root string
}

func newFakeSys(t *testing.T) *fakeSys {
	t.Helper()
	f := &fakeSys{t: t, root: t.TempDir()}
	f.mkdir("block")
	f.mkdir("class/nvme")
	return f
}

func (f *fakeSys) path(rel string) string { return filepath.Join(f.root, rel) }

func (f *fakeSys) mkdir(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(f.path(rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) write(rel, content string) {
	f.t.Helper()
	f.mkdir(filepath.Dir(rel))
	if err := os.WriteFile(f.path(rel), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) symlink(target, rel string) {
	f.t.Helper()
	f.mkdir(filepath.Dir(rel))
	if err := os.Symlink(target, f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
}

// ctrl adds a PCI controller with qemu-style padded identify strings.
func (f *fakeSys) ctrl(name, serial, model, fw string) {
	dir := pciNVMe + "/" + name
	f.write(dir+"/serial", serial)
	f.write(dir+"/model", model)
	f.write(dir+"/firmware_rev", fw)
	f.symlink("../../"+dir, "class/nvme/"+name)
}

type nsSpec struct {
	name, ctrl  string
	dev         string            // major:minor
	sectors     string            // /size content
	lbs         string            // queue/logical_block_size ("" = absent)
	nsid        string            // "" = absent
	ro          string            // "" = absent
	attrs       map[string]string // eui, nguid, uuid, wwid, removable ... (raw content)
	holders     []string
	parts       map[string]string // partition name -> major:minor
	noDevice    bool              // no device symlink
	deviceLinkT string            // override device symlink target
}

// ns adds a namespace under its controller and links it from /sys/block.
func (f *fakeSys) ns(s nsSpec) {
	dir := pciNVMe + "/" + s.ctrl + "/" + s.name
	f.write(dir+"/dev", s.dev+"\n")
	f.write(dir+"/size", s.sectors+"\n")
	if s.lbs != "" {
		f.write(dir+"/queue/logical_block_size", s.lbs+"\n")
	}
	if s.nsid != "" {
		f.write(dir+"/nsid", s.nsid+"\n")
	}
	if s.ro != "" {
		f.write(dir+"/ro", s.ro+"\n")
	}
	for k, v := range s.attrs {
		f.write(dir+"/"+k, v)
	}
	f.mkdir(dir + "/holders")
	f.mkdir(dir + "/power") // an unrelated subdirectory without a partition file
	for _, h := range s.holders {
		f.symlink("../../../../../../virtual/block/"+h, dir+"/holders/"+h)
	}
	for p, mm := range s.parts {
		f.write(dir+"/"+p+"/partition", "1\n")
		f.write(dir+"/"+p+"/dev", mm+"\n")
	}
	if !s.noDevice {
		target := "../../" + s.ctrl
		if s.deviceLinkT != "" {
			target = s.deviceLinkT
		}
		f.symlink(target, dir+"/device")
	}
	f.symlink("../"+dir, "block/"+s.name)
}

const (
	qemuSerial = "LNVTHICK0           \n"
	qemuModel  = "QEMU NVMe Ctrl                          \n"
	qemuFW     = "8.2.2   \n"
)

func TestListBasic(t *testing.T) {
	f := newFakeSys(t)
	f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
	f.ctrl("nvme1", "LNVTHIN1            \n", qemuModel, qemuFW)
	f.ns(nsSpec{
		name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "20971520", lbs: "4096", nsid: "1", ro: "0",
		attrs: map[string]string{
			"eui":       "00 a0 b0 c0 d0 e0 f0 01\n",
			"nguid":     "00112233-4455-6677-8899-aabbccddeeff\n",
			"uuid":      "6F1D2E3C-0000-4000-8000-000000000001\n",
			"wwid":      "uuid.6f1d2e3c-0000-4000-8000-000000000001\n",
			"removable": "0\n",
		},
		holders: []string{"dm-1", "dm-0"},
		parts:   map[string]string{"nvme0n1p2": "259:3", "nvme0n1p1": "259:2"},
	})
	f.ns(nsSpec{name: "nvme0n2", ctrl: "nvme0", dev: "259:1", sectors: "2048", lbs: "512", nsid: "2", ro: "1",
		attrs: map[string]string{"removable": "1\n"}})
	f.ns(nsSpec{name: "nvme1n1", ctrl: "nvme1", dev: "259:4", sectors: "4096", lbs: "512", nsid: "1", ro: "0"})
	// Things List must ignore.
	f.mkdir("devices/virtual/block/loop0")
	f.symlink("../devices/virtual/block/loop0", "block/loop0")
	f.mkdir("devices/other/sda")
	f.symlink("../devices/other/sda", "block/sda")
	f.mkdir(pciNVMe + "/nvme0/nvme0c0n1")
	f.symlink("../"+pciNVMe+"/nvme0/nvme0c0n1", "block/nvme0c0n1")
	f.mkdir("devices/bogus/nvme0n1p1")
	f.symlink("../devices/bogus/nvme0n1p1", "block/nvme0n1p1")

	got, err := Discoverer{SysRoot: f.root, DevRoot: "/host/dev"}.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range got {
		names = append(names, n.Name)
	}
	if want := []string{"nvme0n1", "nvme0n2", "nvme1n1"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}

	want := Namespace{
		Name:             "nvme0n1",
		DevPath:          "/host/dev/nvme0n1",
		Controller:       "nvme0",
		Serial:           "LNVTHICK0",
		Model:            "QEMU NVMe Ctrl",
		Firmware:         "8.2.2",
		NSID:             1,
		SizeBytes:        20971520 * 512,
		LogicalBlockSize: 4096,
		EUI64:            "00a0b0c0d0e0f001",
		NGUID:            "00112233445566778899aabbccddeeff",
		UUID:             "6f1d2e3c-0000-4000-8000-000000000001",
		WWID:             "uuid.6f1d2e3c-0000-4000-8000-000000000001",
		Holders:          []string{"dm-0", "dm-1"},
		Partitions:       []string{"nvme0n1p1", "nvme0n1p2"},
		MajorMinor:       "259:0",
		PartitionMajorMinor: map[string]string{
			"nvme0n1p1": "259:2", "nvme0n1p2": "259:3",
		},
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("nvme0n1 =\n%+v\nwant\n%+v", got[0], want)
	}

	n2 := got[1]
	if !n2.ReadOnly || !n2.Removable || n2.NSID != 2 || n2.SizeBytes != 2048*512 || n2.LogicalBlockSize != 512 {
		t.Errorf("nvme0n2 = %+v", n2)
	}
	if n2.Holders != nil || n2.Partitions != nil || n2.EUI64 != "" || n2.NGUID != "" || n2.UUID != "" || n2.WWID != "" {
		t.Errorf("nvme0n2 should have no holders/partitions/ids: %+v", n2)
	}
	if n2.Identity() != "serial:lnvthick0/ns2" {
		t.Errorf("nvme0n2 identity = %q", n2.Identity())
	}
	if n := got[2]; n.Controller != "nvme1" || n.Serial != "LNVTHIN1" || n.DevPath != "/host/dev/nvme1n1" {
		t.Errorf("nvme1n1 = %+v", n)
	}
}

func TestListDefaultsDevRoot(t *testing.T) {
	f := newFakeSys(t)
	f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
	f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "8", nsid: "1"})
	got, err := Discoverer{SysRoot: f.root}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DevPath != "/dev/nvme0n1" {
		t.Fatalf("got %+v", got)
	}
	// Optional attributes absent: defaults.
	if got[0].LogicalBlockSize != 0 || got[0].ReadOnly || got[0].Removable {
		t.Errorf("got %+v", got[0])
	}
}

// TestListIdentifierFormats covers the sysfs spellings of eui/nguid/uuid. Linux prints
// eui with "%8ph" (space separated bytes; "%8phd" on 4.x, also spaces), nguid and uuid
// with "%pU" (dashed UUID form), and uuid falls back to the NGUID when there is no UUID.
// The attributes are hidden when all-zero, but all-zero content is treated as absent too.
func TestListIdentifierFormats(t *testing.T) {
	tests := []struct {
		name                   string
		attrs                  map[string]string
		eui, nguid, uuid, wwid string
		identity               string
	}{
		{
			name:     "eui with spaces (%8ph)",
			attrs:    map[string]string{"eui": "00 a0 b0 c0 d0 e0 f0 01\n"},
			eui:      "00a0b0c0d0e0f001",
			identity: "eui64:00a0b0c0d0e0f001",
		},
		{
			name:     "eui without separators",
			attrs:    map[string]string{"eui": "00A0B0C0D0E0F001\n"},
			eui:      "00a0b0c0d0e0f001",
			identity: "eui64:00a0b0c0d0e0f001",
		},
		{
			name:     "eui with dashes",
			attrs:    map[string]string{"eui": "00-a0-b0-c0-d0-e0-f0-01\n"},
			eui:      "00a0b0c0d0e0f001",
			identity: "eui64:00a0b0c0d0e0f001",
		},
		{
			name:     "all-zero eui is absent",
			attrs:    map[string]string{"eui": "00 00 00 00 00 00 00 00\n"},
			identity: "serial:lnvthick0/ns1",
		},
		{
			name:     "nguid in %pU form",
			attrs:    map[string]string{"nguid": "00112233-4455-6677-8899-AABBCCDDEEFF\n"},
			nguid:    "00112233445566778899aabbccddeeff",
			identity: "nguid:00112233445566778899aabbccddeeff",
		},
		{
			name:     "nguid plain hex",
			attrs:    map[string]string{"nguid": "00112233445566778899aabbccddeeff\n"},
			nguid:    "00112233445566778899aabbccddeeff",
			identity: "nguid:00112233445566778899aabbccddeeff",
		},
		{
			name: "all-zero nguid and uuid are absent",
			attrs: map[string]string{
				"nguid": "00000000-0000-0000-0000-000000000000\n",
				"uuid":  "00000000-0000-0000-0000-000000000000\n",
			},
			identity: "serial:lnvthick0/ns1",
		},
		{
			name: "uuid that is the kernel's NGUID fallback is dropped",
			attrs: map[string]string{
				"nguid": "00112233-4455-6677-8899-aabbccddeeff\n",
				"uuid":  "00112233-4455-6677-8899-aabbccddeeff\n",
				"wwid":  "eui.00112233445566778899aabbccddeeff\n",
			},
			nguid:    "00112233445566778899aabbccddeeff",
			wwid:     "eui.00112233445566778899aabbccddeeff",
			identity: "nguid:00112233445566778899aabbccddeeff",
		},
		{
			name:     "uuid only",
			attrs:    map[string]string{"uuid": "6F1D2E3C-0000-4000-8000-000000000001\n"},
			uuid:     "6f1d2e3c-0000-4000-8000-000000000001",
			identity: "uuid:6f1d2e3c-0000-4000-8000-000000000001",
		},
		{
			name:     "wwid only (nvme.vid-serial-model-nsid form)",
			attrs:    map[string]string{"wwid": "nvme.1b36-4c4e565448494b4530-51454d55204e564d65204374726c-00000001  \n"},
			wwid:     "nvme.1b36-4c4e565448494b4530-51454d55204e564d65204374726c-00000001",
			identity: "serial:lnvthick0/ns1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSys(t)
			f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
			f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "8", nsid: "1", attrs: tc.attrs})
			got, err := Discoverer{SysRoot: f.root}.List()
			if err != nil {
				t.Fatal(err)
			}
			n := got[0]
			if n.EUI64 != tc.eui || n.NGUID != tc.nguid || n.UUID != tc.uuid || n.WWID != tc.wwid {
				t.Errorf("ids = eui %q nguid %q uuid %q wwid %q; want %q %q %q %q",
					n.EUI64, n.NGUID, n.UUID, n.WWID, tc.eui, tc.nguid, tc.uuid, tc.wwid)
			}
			if n.Identity() != tc.identity {
				t.Errorf("Identity() = %q, want %q", n.Identity(), tc.identity)
			}
		})
	}
}

func TestListControllerResolution(t *testing.T) {
	t.Run("class directory fallback when there is no device link", func(t *testing.T) {
		f := newFakeSys(t)
		f.ctrl("nvme3", qemuSerial, qemuModel, qemuFW)
		f.ns(nsSpec{name: "nvme3n1", ctrl: "nvme3", dev: "259:0", sectors: "8", nsid: "1", noDevice: true})
		got, err := Discoverer{SysRoot: f.root}.List()
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Controller != "nvme3" || got[0].Serial != "LNVTHICK0" || got[0].Model != "QEMU NVMe Ctrl" || got[0].Firmware != "8.2.2" {
			t.Errorf("got %+v", got[0])
		}
	})

	t.Run("native multipath head", func(t *testing.T) {
		f := newFakeSys(t)
		f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
		// The head disk lives under the subsystem; its device link points at the subsystem,
		// and the controller only has the hidden path nvme0c0n1.
		sub := "devices/virtual/nvme-subsystem/nvme-subsys0"
		f.write(sub+"/serial", "SUBSYSSERIAL        \n")
		f.write(sub+"/model", qemuModel)
		f.write(sub+"/firmware_rev", qemuFW)
		f.write(sub+"/nvme0n1/dev", "259:0\n")
		f.write(sub+"/nvme0n1/size", "8\n")
		f.write(sub+"/nvme0n1/nsid", "1\n")
		f.symlink("../../nvme-subsys0", sub+"/nvme0n1/device")
		f.symlink("../"+sub+"/nvme0n1", "block/nvme0n1")
		f.mkdir(pciNVMe + "/nvme0/nvme0c0n1")
		got, err := Discoverer{SysRoot: f.root}.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Controller != "nvme0" || got[0].Serial != "LNVTHICK0" {
			t.Errorf("got %+v", got)
		}
	})

	t.Run("no controller: identify strings from the device directory", func(t *testing.T) {
		f := newFakeSys(t)
		sub := "devices/virtual/nvme-subsystem/nvme-subsys4"
		f.write(sub+"/serial", "ONLYSUBSYS  \n")
		f.write(sub+"/model", qemuModel)
		f.write(sub+"/firmware_rev", qemuFW)
		f.write(sub+"/nvme4n1/dev", "259:0\n")
		f.write(sub+"/nvme4n1/size", "8\n")
		f.write(sub+"/nvme4n1/nsid", "7\n")
		f.symlink("../../nvme-subsys4", sub+"/nvme4n1/device")
		f.symlink("../"+sub+"/nvme4n1", "block/nvme4n1")
		got, err := Discoverer{SysRoot: f.root}.List()
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Controller != "" || got[0].Serial != "ONLYSUBSYS" || got[0].Identity() != "serial:onlysubsys/ns7" {
			t.Errorf("got %+v", got[0])
		}
	})
}

func TestListNSIDFallbackFromName(t *testing.T) {
	f := newFakeSys(t)
	f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
	f.ns(nsSpec{name: "nvme0n3", ctrl: "nvme0", dev: "259:0", sectors: "8"})
	got, err := Discoverer{SysRoot: f.root}.List()
	if err != nil {
		t.Fatal(err)
	}
	if got[0].NSID != 3 {
		t.Errorf("NSID = %d, want 3", got[0].NSID)
	}
}

func TestListSkipsVanishedNamespace(t *testing.T) {
	f := newFakeSys(t)
	f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
	f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "8", nsid: "1"})
	f.symlink("../devices/gone/nvme0n2", "block/nvme0n2") // dangling: removed mid-scan
	got, err := Discoverer{SysRoot: f.root}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "nvme0n1" {
		t.Errorf("got %+v", got)
	}
}

func TestListErrors(t *testing.T) {
	t.Run("no /sys/block", func(t *testing.T) {
		_, err := Discoverer{SysRoot: t.TempDir()}.List()
		if err == nil {
			t.Fatal("expected an error")
		}
	})
	t.Run("unparsable size", func(t *testing.T) {
		f := newFakeSys(t)
		f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
		f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "lots", nsid: "1"})
		_, err := Discoverer{SysRoot: f.root}.List()
		if err == nil || !strings.Contains(err.Error(), "size") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing dev attribute of a present namespace", func(t *testing.T) {
		f := newFakeSys(t)
		f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
		f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "8", nsid: "1"})
		if err := os.Remove(f.path(pciNVMe + "/nvme0/nvme0n1/dev")); err != nil {
			t.Fatal(err)
		}
		if _, err := (Discoverer{SysRoot: f.root}).List(); err == nil {
			t.Fatal("expected an error")
		}
	})
}

type fakeIDs struct {
	ids   nvme.NamespaceIDs
	calls []string
}

func (f *fakeIDs) NamespaceIDs(dev string, nsid uint32) (nvme.NamespaceIDs, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s/%d", dev, nsid))
	return f.ids, nil
}

// TestListAsksDeviceWhenSysfsHidesIDs: with no eui/nguid/uuid in sysfs (Linux hides them
// for qemu's controller), discovery asks the device (NVMe Identify) and the identity
// becomes the EUI-64; with sysfs IDs present the device is not asked.
func TestListAsksDeviceWhenSysfsHidesIDs(t *testing.T) {
	f := newFakeSys(t)
	f.ctrl("nvme0", qemuSerial, qemuModel, qemuFW)
	f.ns(nsSpec{name: "nvme0n1", ctrl: "nvme0", dev: "259:0", sectors: "8", nsid: "1"})
	ids := &fakeIDs{ids: nvme.NamespaceIDs{EUI64: "00a0b0c0d0e0f001", UUID: "6c6e766d-0000-4000-8000-000000000001"}}
	got, err := Discoverer{SysRoot: f.root, DevRoot: "/dev", IDs: ids}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Identity() != "eui64:00a0b0c0d0e0f001" || got[0].UUID != ids.ids.UUID {
		t.Fatalf("got %+v (identity %s)", got, got[0].Identity())
	}
	if len(ids.calls) != 1 || ids.calls[0] != "/dev/nvme0n1/1" {
		t.Errorf("Identify calls %v", ids.calls)
	}
	f.write("block/nvme0n1/eui", "00 11 22 33 44 55 66 77\n")
	ids.calls = nil
	got, _ = Discoverer{SysRoot: f.root, IDs: ids}.List()
	if len(ids.calls) != 0 || got[0].EUI64 != "0011223344556677" {
		t.Errorf("sysfs IDs present: calls %v, eui %s", ids.calls, got[0].EUI64)
	}
}
