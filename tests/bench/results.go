package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Record is one measurement: the driver doing something n times against the bare tools
// doing the same work n times, alternating, in one run.
type Record struct {
	Name string `json:"name"` // e.g. "create/thick"
	// LVs is the number of LVs that existed in each device class while it was measured
	// (the level), 0 when the measurement does not depend on it.
	LVs  int    `json:"lvs"`
	N    int    `json:"n"`
	Unit string `json:"unit"` // "ms" unless stated: "ms/GiB", "IOPS", "MiB/s"
	// DriverP50..BareP90 are in Unit.
	DriverP50 float64 `json:"driver_p50"`
	DriverP90 float64 `json:"driver_p90"`
	BareP50   float64 `json:"bare_p50"`
	BareP90   float64 `json:"bare_p90"`
	// Ratio is DriverP50 / BareP50 (for throughput units: the driver's side over the bare
	// side, so below 1 is slower there).
	Ratio float64 `json:"ratio"`
	// ExecsPerOp counts the external commands the driver started per operation (lvm, blkid,
	// mkfs.*, resize2fs, xfs_growfs, mount, umount), measured over the n operations; Execs
	// breaks them down (lvm by subcommand). -1 when not instrumented.
	ExecsPerOp float64            `json:"execs_per_op"`
	Execs      map[string]float64 `json:"execs,omitempty"`
	Driver     string             `json:"driver"` // what the driver side ran (CSI RPCs)
	Bare       string             `json:"bare"`   // the bare-tool equivalent
	Note       string             `json:"note,omitempty"`
}

// Meta describes the run.
type Meta struct {
	Started  time.Time `json:"started"`
	WallSecs float64   `json:"wall_seconds"`
	Version  string    `json:"version"`
	Kernel   string    `json:"kernel"`
	Levels   []int     `json:"levels"`
	N        int       `json:"n"`
	NSlow    int       `json:"n_slow"`
	Notes    []string  `json:"notes,omitempty"`
}

// Results is results.json.
type Results struct {
	Meta    Meta     `json:"meta"`
	Records []Record `json:"records"`
}

// Sample builds a Record from the driver's and the bare side's samples (in Unit).
func Sample(name string, lvs int, unit string, drv, bare []float64) Record {
	r := Record{Name: name, LVs: lvs, N: len(drv), Unit: unit, ExecsPerOp: -1,
		DriverP50: Percentile(drv, 50), DriverP90: Percentile(drv, 90),
		BareP50: Percentile(bare, 50), BareP90: Percentile(bare, 90)}
	r.Ratio = r.DriverP50 / r.BareP50
	return r
}

// WithExecs sets the exec counts (total over ops operations).
func (r Record) WithExecs(c Counts, ops int) Record {
	r.Execs = c.PerOp(ops)
	r.ExecsPerOp = 0
	if ops > 0 {
		r.ExecsPerOp = float64(c.Total()) / float64(ops)
	}
	return r
}

// jsonFloat keeps NaN and Inf out of the JSON (encoding/json refuses them): they become 0.
func (r Record) clean() Record {
	for _, f := range []*float64{&r.DriverP50, &r.DriverP90, &r.BareP50, &r.BareP90, &r.Ratio, &r.ExecsPerOp} {
		if math.IsNaN(*f) || math.IsInf(*f, 0) {
			*f = 0
		}
	}
	return r
}

// WriteJSON writes the results as indented JSON.
func (res Results) WriteJSON(w io.Writer) error {
	out := res
	out.Records = make([]Record, len(res.Records))
	for i, r := range res.Records {
		out.Records[i] = r.clean()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func fmtNum(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "–"
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case math.Abs(f) >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	default:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
}

func fmtRatio(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) || f == 0 {
		return "–"
	}
	return strconv.FormatFloat(f, 'f', 2, 64) + "×"
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// WriteMarkdown writes the results as a Markdown table, one row per record in order.
func (res Results) WriteMarkdown(w io.Writer) error {
	m := res.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "localnvme %s, kernel %s, %s, wall %s; levels %v LVs per class, n=%d (slow rows n=%d). Times in ms unless the unit says otherwise; ratio = driver p50 / bare p50.\n\n",
		m.Version, m.Kernel, m.Started.UTC().Format("2006-01-02 15:04 UTC"), (time.Duration(m.WallSecs) * time.Second).String(), m.Levels, m.N, m.NSlow)
	b.WriteString("| measurement | LVs | n | unit | driver p50 | driver p90 | bare p50 | bare p90 | ratio | execs/op | driver execs per op | bare equivalent |\n")
	b.WriteString("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, r := range res.Records {
		execs, per := "–", ""
		if r.ExecsPerOp >= 0 {
			execs, per = fmtNum(r.ExecsPerOp), FormatPerOp(r.Execs)
		}
		lvs := "–"
		if r.LVs > 0 {
			lvs = strconv.Itoa(r.LVs)
		}
		bare := r.Bare
		if r.Note != "" {
			bare += " (" + r.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			mdEscape(r.Name), lvs, r.N, r.Unit, fmtNum(r.DriverP50), fmtNum(r.DriverP90), fmtNum(r.BareP50), fmtNum(r.BareP90),
			fmtRatio(r.Ratio), execs, mdEscape(per), mdEscape(bare))
	}
	for _, n := range m.Notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	if len(m.Notes) > 0 {
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFiles writes results.json and results.md into dir (atomically, each via a temporary
// file), so a run that dies later still leaves the measurements taken so far.
func (res Results) WriteFiles(dir string) error {
	write := func(name string, f func(io.Writer) error) error {
		tmp, err := os.CreateTemp(dir, name+".tmp*")
		if err != nil {
			return err
		}
		if err := f(tmp); err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err := write("results.json", res.WriteJSON); err != nil {
		return err
	}
	return write("results.md", res.WriteMarkdown)
}
