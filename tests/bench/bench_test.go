package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"
)

func TestPercentile(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{5}, 50, 5},
		{[]float64{5}, 90, 5},
		{[]float64{3, 1, 2}, 50, 2},
		{[]float64{4, 1, 3, 2}, 50, 2.5},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9.1},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 50, 5.5},
		{[]float64{10, 20}, 0, 10},
		{[]float64{10, 20}, 100, 20},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 90, 18.1},
	} {
		if got := Percentile(c.xs, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.xs, c.p, got, c.want)
		}
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("Percentile of nothing is not NaN")
	}
	xs := []float64{3, 1, 2}
	Percentile(xs, 50)
	if !reflect.DeepEqual(xs, []float64{3, 1, 2}) {
		t.Errorf("Percentile sorted its argument: %v", xs)
	}
	if got := Millis([]time.Duration{1500 * time.Microsecond, 2 * time.Second}); !reflect.DeepEqual(got, []float64{1.5, 2000}) {
		t.Errorf("Millis = %v", got)
	}
}

func TestExecCounter(t *testing.T) {
	fake := &testingexec.FakeExec{}
	script := func(out string) testingexec.FakeCommandAction {
		return func(cmd string, args ...string) utilexec.Cmd {
			return testingexec.InitFakeCmd(&testingexec.FakeCmd{CombinedOutputScript: []testingexec.FakeAction{
				func() ([]byte, []byte, error) { return []byte(out), nil, nil },
			}}, cmd, args...)
		}
	}
	for i := 0; i < 5; i++ {
		fake.CommandScript = append(fake.CommandScript, script("ok"))
	}
	c := NewExecCounter(fake)
	var ex utilexec.Interface = c
	run := func(cmd utilexec.Cmd) {
		t.Helper()
		if out, err := cmd.CombinedOutput(); err != nil || string(out) != "ok" {
			t.Fatalf("wrapped command: %q, %v", out, err)
		}
	}
	before := c.Snapshot()
	run(ex.CommandContext(context.Background(), "lvm", "lvcreate", "--yes", "-n", "x", "vg"))
	run(ex.CommandContext(context.Background(), "lvm", "fullreport", "--reportformat", "json"))
	run(ex.Command("/usr/sbin/blkid", "-p", "/dev/x"))
	mid := c.Snapshot()
	run(ex.CommandContext(context.Background(), "lvm", "fullreport"))
	run(ex.Command("mkfs.ext4", "-q", "/dev/x"))
	c.Add("mount")
	after := c.Snapshot()

	if fake.CommandCalls != 5 {
		t.Errorf("inner exec got %d calls, want 5 (every call passed through)", fake.CommandCalls)
	}
	if got, want := mid.Sub(before), (Counts{"lvm lvcreate": 1, "lvm fullreport": 1, "blkid": 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("first RPC: %v, want %v", got, want)
	}
	d := after.Sub(mid)
	if want := (Counts{"lvm fullreport": 1, "mkfs.ext4": 1, "mount": 1}); !reflect.DeepEqual(d, want) {
		t.Errorf("second RPC: %v, want %v", d, want)
	}
	total := Counts{}
	total.Add(mid.Sub(before))
	total.Add(d)
	if total.Total() != 6 {
		t.Errorf("total %d, want 6", total.Total())
	}
	if got := FormatPerOp(total.PerOp(2)); got != "lvm fullreport 1, blkid 0.5, lvm lvcreate 0.5, mkfs.ext4 0.5, mount 0.5" {
		t.Errorf("FormatPerOp = %q", got)
	}
	// Snapshots are copies.
	before["x"] = 9
	if c.Snapshot()["x"] != 0 {
		t.Error("Snapshot shares the counter's map")
	}
	if Key("lvm", []string{"--version"}) != "lvm" || Key("/sbin/lvm", []string{"lvs"}) != "lvm lvs" {
		t.Error("Key")
	}
}

func TestResultsWriters(t *testing.T) {
	res := Results{
		Meta: Meta{Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), WallSecs: 75, Version: "v1", Kernel: "6.1", Levels: []int{10, 100}, N: 3, NSlow: 2, Notes: []string{"TCG: compare ratios"}},
		Records: []Record{
			Sample("create/thick", 10, "ms", []float64{10, 20, 30}, []float64{5, 10, 15}).WithExecs(Counts{"lvm lvcreate": 3, "lvm fullreport": 6}, 3),
			Sample("fio/randread-4k-qd1", 0, "IOPS", []float64{100}, []float64{200}),
			Sample("empty", 0, "ms", nil, nil),
		},
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("results.json does not parse: %v\n%s", err, js.String())
	}
	r := back.Records[0]
	if r.Name != "create/thick" || r.LVs != 10 || r.N != 3 || r.DriverP50 != 20 || r.DriverP90 != 28 || r.BareP50 != 10 || r.BareP90 != 14 || r.Ratio != 2 || r.ExecsPerOp != 3 || r.Execs["lvm fullreport"] != 2 {
		t.Errorf("record 0 round trip: %+v", r)
	}
	if back.Records[1].ExecsPerOp != -1 || back.Records[1].Ratio != 0.5 {
		t.Errorf("record 1: %+v", back.Records[1])
	}
	if back.Records[2].DriverP50 != 0 || back.Records[2].Ratio != 0 {
		t.Errorf("NaN not cleaned: %+v", back.Records[2])
	}
	for _, k := range []string{`"driver_p50"`, `"bare_p90"`, `"execs_per_op"`, `"ratio"`, `"n"`, `"name"`} {
		if !strings.Contains(js.String(), k) {
			t.Errorf("results.json lacks %s", k)
		}
	}

	var md bytes.Buffer
	if err := res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(md.String(), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| measurement") && !strings.HasPrefix(l, "| ---") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("markdown has %d data rows, want 3:\n%s", len(rows), md.String())
	}
	if want := "| create/thick | 10 | 3 | ms | 20 | 28 | 10 | 14 | 2.00× | 3 | lvm fullreport 2, lvm lvcreate 1 |  |"; rows[0] != want {
		t.Errorf("row 0:\n got %s\nwant %s", rows[0], want)
	}
	if !strings.Contains(rows[1], "| – | 1 | IOPS | 100 |") || !strings.Contains(rows[1], "0.50×") {
		t.Errorf("row 1: %s", rows[1])
	}
	if !strings.Contains(md.String(), "wall 1m15s") || !strings.Contains(md.String(), "- TCG: compare ratios") {
		t.Errorf("header/notes missing:\n%s", md.String())
	}

	dir := t.TempDir()
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "results.md"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v (%d bytes)", f, err, len(b))
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
