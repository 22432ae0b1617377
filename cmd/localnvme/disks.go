package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/node"
	"github.com/localnvme/localnvme/pkg/volume"
)

const disksUsage = `Usage:
  localnvme disks [--config FILE] list [-o table|json]
  localnvme disks [--config FILE] adopt --class CLASS [--force-wipe IDENTITY] IDENTITY
  localnvme disks [--config FILE] release IDENTITY

list     every NVMe namespace: identity, size, which class uses or would adopt it, and
         why a drive is refused (nothing is changed)
adopt    add a provably empty drive to a class's volume group; a drive that is not empty
         is refused unless --force-wipe repeats its identity (then its signatures are
         erased with wipefs first; mounted, held, swap or read-only drives never are)
release  remove a drive from its class's volume group when no extent of it is in use

Drives are named by identity (see "list"), never by /dev path alone. Run it on the node
(or in the node pod); the node plugin sees adopted/released drives at its next start.
`

// runDisks is the operator CLI; out receives the listing, errors go to stderr.
func runDisks(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("disks", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/localnvme/config.yaml", "device class configuration (optional for list)")
	lvmConfig := fs.String("lvm-config", "", "extra LVM configuration passed to every lvm command as --config")
	fs.Usage = func() { fmt.Fprint(os.Stderr, disksUsage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	ctx := klog.NewContext(context.Background(), klog.Background())
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		if fs.Arg(0) != "list" || !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return 1
		}
		cfg = &config.Config{} // list works without a configuration: no classes
	}
	p := node.NewParts(node.Options{Config: cfg, LVMConfig: *lvmConfig})
	sub, rest := fs.Arg(0), fs.Args()[1:]
	switch sub {
	case "list":
		return disksList(ctx, p, rest, out)
	case "adopt":
		return disksAdopt(ctx, p, rest, out)
	case "release":
		if len(rest) != 1 {
			fmt.Fprint(os.Stderr, disksUsage)
			return 2
		}
		d, err := p.Engine.Release(ctx, rest[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return 1
		}
		_, _ = fmt.Fprintf(out, "released %s (%s)\n", d.DevPath, d.Identity()) // released either way: the exit code says so
		return 0
	default:
		fmt.Fprintf(os.Stderr, "unknown disks command %q\n%s", sub, disksUsage)
		return 2
	}
}

func disksAdopt(ctx context.Context, p *node.Parts, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("adopt", flag.ContinueOnError)
	class := fs.String("class", "", "device class to adopt the drive into (required)")
	force := fs.String("force-wipe", "", "erase the drive's signatures first; must repeat the drive's identity")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *class == "" || fs.NArg() != 1 {
		fmt.Fprint(os.Stderr, disksUsage)
		return 2
	}
	d, err := p.Engine.Adopt(ctx, *class, fs.Arg(0), *force, p.Prober)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	_, _ = fmt.Fprintf(out, "%s (%s) is a member of class %s (volume group %s)\n", d.DevPath, d.Identity(), d.Class, d.VG) // adopted either way: the exit code says so
	return 0
}

// driveJSON is the stable JSON form of `disks list -o json`.
type driveJSON struct {
	Device           string   `json:"device"`
	Controller       string   `json:"controller"`
	Identity         string   `json:"identity"`
	Identities       []string `json:"identities"`
	Serial           string   `json:"serial"`
	Model            string   `json:"model"`
	Firmware         string   `json:"firmware"`
	NSID             int      `json:"nsid"`
	SizeBytes        int64    `json:"sizeBytes"`
	LogicalBlockSize int      `json:"logicalBlockSize"`
	EUI64            string   `json:"eui64,omitempty"`
	NGUID            string   `json:"nguid,omitempty"`
	UUID             string   `json:"uuid,omitempty"`
	Class            string   `json:"class,omitempty"`
	VolumeGroup      string   `json:"volumeGroup,omitempty"`
	State            string   `json:"state"`
	Reasons          []string `json:"reasons,omitempty"`
	ReasonCodes      []string `json:"reasonCodes,omitempty"`
	// SharesIdentityWith: other namespaces answering to one of its device identities
	SharesIdentityWith []string    `json:"sharesIdentityWith,omitempty"`
	Health             *healthJSON `json:"health,omitempty"`
	HealthError        string      `json:"healthError,omitempty"`
}

// healthJSON is the NVMe SMART / health log as `disks list -o json` shows it.
type healthJSON struct {
	Degraded                bool     `json:"degraded"`
	DegradedReasons         []string `json:"degradedReasons,omitempty"`
	CriticalWarning         uint8    `json:"criticalWarning"`
	CriticalWarnings        []string `json:"criticalWarnings,omitempty"`
	TemperatureCelsius      int      `json:"temperatureCelsius"`
	AvailableSpare          uint8    `json:"availableSparePercent"`
	AvailableSpareThreshold uint8    `json:"availableSpareThresholdPercent"`
	PercentageUsed          uint8    `json:"percentageUsed"`
	MediaErrors             uint64   `json:"mediaErrors"`
	IntegrityErrors         uint64   `json:"errorLogEntries"`
	UnsafeShutdowns         uint64   `json:"unsafeShutdowns"`
	PowerOnHours            uint64   `json:"powerOnHours"`
}

func toHealthJSON(d volume.Drive) (*healthJSON, string) {
	if d.HealthErr != nil {
		return nil, d.HealthErr.Error()
	}
	h := d.Health
	if h == nil {
		return nil, ""
	}
	bad, why := h.Degraded()
	return &healthJSON{
		Degraded: bad, DegradedReasons: why, CriticalWarning: h.CriticalWarning, CriticalWarnings: h.WarningNames(),
		TemperatureCelsius: h.TemperatureCelsius(), AvailableSpare: h.AvailableSpare, AvailableSpareThreshold: h.AvailableSpareThreshold,
		PercentageUsed: h.PercentageUsed, MediaErrors: h.MediaErrors, IntegrityErrors: h.ErrorLogEntries,
		UnsafeShutdowns: h.UnsafeShutdowns, PowerOnHours: h.PowerOnHours,
	}, ""
}

// healthCell is the HEALTH column: "ok 50C", "DEGRADED (…)" or "?" when unreadable.
func healthCell(d volume.Drive) string {
	switch {
	case d.HealthErr != nil:
		return "?"
	case d.Health == nil:
		return "-"
	}
	if bad, _ := d.Health.Degraded(); bad {
		return fmt.Sprintf("DEGRADED(%s)", strings.Join(d.Health.WarningNames(), ","))
	}
	return fmt.Sprintf("ok %dC", d.Health.TemperatureCelsius())
}

func disksList(ctx context.Context, p *node.Parts, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	format := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	drives, err := p.Engine.Drives(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	switch *format {
	case "json":
		list := make([]driveJSON, 0, len(drives))
		for _, d := range drives {
			h, herr := toHealthJSON(d)
			list = append(list, driveJSON{
				Health: h, HealthError: herr,
				Device: d.DevPath, Controller: d.Controller, Identity: d.Identity(), Identities: d.Identities(),
				Serial: d.Serial, Model: d.Model, Firmware: d.Firmware, NSID: d.NSID, SizeBytes: d.SizeBytes,
				LogicalBlockSize: d.LogicalBlockSize, EUI64: d.EUI64, NGUID: d.NGUID, UUID: d.UUID,
				Class: d.Class, VolumeGroup: d.VG, State: string(d.State), Reasons: d.Reasons, ReasonCodes: d.Codes,
				SharesIdentityWith: d.SharesIdentityWith,
			})
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return 1
		}
	case "table":
		if err := writeDriveTable(out, drives); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown output format %q\n", *format)
		return 2
	}
	return 0
}

// writeDriveTable writes the table. Every line has tabs, so the tabwriter keeps all of it
// until Flush, its only write to out: Flush's error is the table's.
func writeDriveTable(out io.Writer, drives []volume.Drive) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "DEVICE\tIDENTITY\tSERIAL\tMODEL\tSIZE\tHEALTH\tCLASS\tSTATE\tDETAIL")
	for _, d := range drives {
		detail := strings.Join(d.Reasons, "; ")
		if d.State == volume.DriveMember {
			detail = "volume group " + d.VG
		}
		if len(d.SharesIdentityWith) > 0 {
			// it can be named only by serial and namespace
			detail = strings.TrimSuffix("AMBIGUOUS identity, shared with "+strings.Join(d.SharesIdentityWith, ", ")+"; "+detail, "; ")
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.DevPath, d.Identity(), d.Serial, d.Model,
			humanBytes(d.SizeBytes), healthCell(d), dash(d.Class), d.State, detail)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ci", float64(n)/float64(div), "KMGTPE"[exp])
}
