//go:build vmtest

package vm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/localnvme/localnvme/pkg/nvme"
)

// serialCrit0 is the drive the harness starts with qemu's smart_critical_warning set
// (hack/vm/run.sh SPEC option crit=N); -nvme-crit-warning must match that N.
const serialCrit0 = "LNVCRIT0"

var nvmeCritWarning = flag.Uint("nvme-crit-warning", 0x05, "critical warning bits the harness gave "+serialCrit0+" (run.sh crit=N)")

var (
	hex16RE = regexp.MustCompile(`^[0-9a-f]{16}$`)
	hex32RE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// vmDrive is one line of /etc/localnvme-drives: "serial size eui64 uuid" ("-" for none).
type vmDrive struct{ serial, size, eui64, uuid string }

func readDrives(t *testing.T) []vmDrive {
	t.Helper()
	f, err := os.Open("/etc/localnvme-drives")
	if err != nil {
		t.Fatalf("drive table: %v", err)
	}
	defer f.Close()
	var out []vmDrive
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 4 {
			t.Fatalf("drive table line %q: want 4 fields", sc.Text())
		}
		out = append(out, vmDrive{fs[0], fs[1], fs[2], fs[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("drive table is empty")
	}
	return out
}

// nvmeCLIJSON runs `nvme <args> -o json` and returns its top-level object, or nil (logged)
// when nvme-cli is missing or prints something else: it is only a cross-check.
func nvmeCLIJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := exec.Command("nvme", append(args, "-o", "json")...).Output()
	if err != nil {
		t.Logf("nvme %s: %v (cross-check skipped)", strings.Join(args, " "), err)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Logf("nvme %s: unparsable JSON (%v) (cross-check skipped):\n%s", strings.Join(args, " "), err, out)
		return nil
	}
	t.Logf("nvme %s -o json: %s", strings.Join(args, " "), bytes.Join(bytes.Fields(out), []byte(" ")))
	return m
}

// cliInt returns m[key] as an integer (JSON number or numeric string).
func cliInt(m map[string]any, key string) (int64, bool) {
	switch v := m[key].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		return n, err == nil
	}
	return 0, false
}

func normHex(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	s = strings.NewReplacer("-", "", ":", "", " ", "").Replace(s)
	if strings.Trim(s, "0") == "" {
		return ""
	}
	return s
}

// TestNVMeIdentityAndHealth reads every harness drive's identity and SMART log through the
// admin passthrough ioctl (pkg/nvme) and checks them against what the harness configured
// qemu with; nvme-cli's JSON is logged and cross-checked where it reports the same field.
func TestNVMeIdentityAndHealth(t *testing.T) {
	requireVM(t)
	cl := nvme.Client{Admin: nvme.IoctlAdmin{}}
	for _, d := range readDrives(t) {
		t.Run(d.serial, func(t *testing.T) {
			ns := namespaceBySerial(t, d.serial)
			if ns.Controller == "" {
				t.Fatalf("%s: no controller found in sysfs", ns.Name)
			}
			ctrlPath := "/dev/" + ns.Controller
			t.Logf("%s: namespace %s (nsid %d), controller %s; sysfs eui=%q nguid=%q uuid=%q wwid=%q",
				d.serial, ns.DevPath, ns.NSID, ctrlPath, ns.EUI64, ns.NGUID, ns.UUID, ns.WWID)

			// Identify Controller, through the controller and through the namespace.
			ctrl, err := cl.IdentifyController(ctrlPath)
			if err != nil {
				t.Fatalf("IdentifyController(%s): %v", ctrlPath, err)
			}
			t.Logf("identify controller: %+v", *ctrl)
			if ctrl.Serial != d.serial {
				t.Errorf("serial = %q, want %q", ctrl.Serial, d.serial)
			}
			if ctrl.Model != ns.Model || ctrl.Firmware != ns.Firmware {
				t.Errorf("model/firmware = %q/%q, sysfs says %q/%q", ctrl.Model, ctrl.Firmware, ns.Model, ns.Firmware)
			}
			if b, err := os.ReadFile(filepath.Join("/sys/class/nvme", ns.Controller, "device", "vendor")); err == nil {
				if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 16); err == nil && v != uint64(ctrl.VID) {
					t.Errorf("VID = %#04x, PCI vendor is %#04x", ctrl.VID, v)
				}
			}
			if viaNS, err := cl.IdentifyController(ns.DevPath); err != nil {
				t.Errorf("IdentifyController(%s): %v", ns.DevPath, err)
			} else if *viaNS != *ctrl {
				t.Errorf("IdentifyController via namespace = %+v, via controller %+v", *viaNS, *ctrl)
			}

			// Namespace identifiers: the kernel hides them from sysfs (NVME_QUIRK_BOGUS_NID);
			// the device returns them to the admin commands.
			ids, err := cl.NamespaceIDs(ns.DevPath, uint32(ns.NSID))
			if err != nil {
				t.Fatalf("NamespaceIDs(%s, %d): %v", ns.DevPath, ns.NSID, err)
			}
			t.Logf("namespace ids: %+v", ids)
			if viaCtrl, err := cl.NamespaceIDs(ctrlPath, uint32(ns.NSID)); err != nil {
				t.Errorf("NamespaceIDs(%s, %d): %v", ctrlPath, ns.NSID, err)
			} else if viaCtrl != ids {
				t.Errorf("NamespaceIDs via controller = %+v, via namespace %+v", viaCtrl, ids)
			}
			if ids.EUI64 != "" && !hex16RE.MatchString(ids.EUI64) ||
				ids.NGUID != "" && !hex32RE.MatchString(ids.NGUID) ||
				ids.UUID != "" && !uuidRE.MatchString(ids.UUID) {
				t.Errorf("malformed ids %+v", ids)
			}
			if d.eui64 != "-" {
				if want := normHex(d.eui64); ids.EUI64 != want {
					t.Errorf("EUI64 = %q, want %q", ids.EUI64, want)
				}
			}
			if d.uuid != "-" && ids.UUID != d.uuid {
				t.Errorf("UUID = %q, want %q", ids.UUID, d.uuid)
			}
			if m := nvmeCLIJSON(t, "ns-descs", ns.DevPath); m != nil {
				// nvme-cli 2.x: {"ns-descs":[{"type":"eui64","eui64":"…"},{"type":"uuid",…},…]}
				if list, ok := m["ns-descs"].([]any); ok {
					cli := map[string]string{}
					for _, e := range list {
						if em, ok := e.(map[string]any); ok {
							if typ, _ := em["type"].(string); typ == "eui64" || typ == "nguid" || typ == "uuid" {
								v, _ := em[typ].(string)
								cli[typ] = normHex(v)
							}
						}
					}
					ours := map[string]string{"eui64": ids.EUI64, "nguid": ids.NGUID, "uuid": normHex(ids.UUID)}
					for k, v := range ours {
						if cli[k] != v {
							t.Errorf("nvme ns-descs %s = %q, ours %q", k, cli[k], v)
						}
					}
				}
			}

			// SMART / Health Information.
			h, err := cl.Health(ctrlPath)
			if err != nil {
				t.Fatalf("Health(%s): %v", ctrlPath, err)
			}
			t.Logf("smart log: %+v; %d °C, warnings %q", *h, h.TemperatureCelsius(), h.WarningNames())
			if c := h.TemperatureCelsius(); c <= 0 || c >= 100 {
				t.Errorf("temperature %d K = %d °C is implausible", h.TemperatureKelvin, c)
			}
			if h.AvailableSpare > 100 || h.AvailableSpareThreshold > 100 {
				t.Errorf("available spare %d%% / threshold %d%%: not percentages", h.AvailableSpare, h.AvailableSpareThreshold)
			}
			if viaNS, err := cl.Health(ns.DevPath); err != nil {
				t.Errorf("Health(%s): %v", ns.DevPath, err)
			} else if viaNS.CriticalWarning != h.CriticalWarning || viaNS.TemperatureKelvin != h.TemperatureKelvin ||
				viaNS.AvailableSpare != h.AvailableSpare || viaNS.PercentageUsed != h.PercentageUsed {
				t.Errorf("Health via namespace = %+v, via controller %+v", *viaNS, *h)
			}
			if m := nvmeCLIJSON(t, "smart-log", ctrlPath); m != nil {
				for _, f := range []struct {
					key  string
					ours int64
				}{
					{"critical_warning", int64(h.CriticalWarning)},
					{"avail_spare", int64(h.AvailableSpare)},
					{"spare_thresh", int64(h.AvailableSpareThreshold)},
					{"percent_used", int64(h.PercentageUsed)},
					{"power_cycles", int64(h.PowerCycles)},
					{"unsafe_shutdowns", int64(h.UnsafeShutdowns)},
					{"media_errors", int64(h.MediaErrors)},
				} {
					if v, ok := cliInt(m, f.key); ok && v != f.ours {
						t.Errorf("nvme smart-log %s = %d, ours %d", f.key, v, f.ours)
					}
				}
				// nvme-cli prints Kelvin (older) or Celsius (newer) here.
				if v, ok := cliInt(m, "temperature"); ok && v != int64(h.TemperatureKelvin) && v != int64(h.TemperatureCelsius()) {
					t.Errorf("nvme smart-log temperature = %d, ours %d K", v, h.TemperatureKelvin)
				}
			}

			degraded, reasons := h.Degraded()
			t.Logf("degraded=%v reasons=%q", degraded, reasons)
			if d.serial == serialCrit0 {
				want := uint8(*nvmeCritWarning)
				if h.CriticalWarning != want {
					t.Errorf("critical warning = %#02x, qemu was given %#02x", h.CriticalWarning, want)
				}
				wantNames := (&nvme.HealthLog{CriticalWarning: want}).WarningNames()
				if !reflect.DeepEqual(h.WarningNames(), wantNames) {
					t.Errorf("warnings = %q, want %q", h.WarningNames(), wantNames)
				}
				if !degraded {
					t.Errorf("%s with critical warning %#02x is not degraded", d.serial, want)
				}
			} else if degraded {
				t.Errorf("%s is degraded: %q", d.serial, reasons)
			}
		})
	}
}
