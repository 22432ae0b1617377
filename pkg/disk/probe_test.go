package disk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"
)

// A mountinfo with the usual suspects and nothing on nvme0n1 (259:0) or its partitions.
const baseMountInfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4010372k
40 22 259:9 / /var/lib/other rw,relatime shared:30 - xfs /dev/nvme1n1 rw
`

const swapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

type blkidResult struct {
	stdout, stderr string
	err            error
}

// fakeBlkid scripts one blkid run and records its argv.
func fakeBlkid(r blkidResult) (*testingexec.FakeExec, *testingexec.FakeCmd) {
	fc := &testingexec.FakeCmd{
		RunScript: []testingexec.FakeAction{func() ([]byte, []byte, error) {
			return []byte(r.stdout), []byte(r.stderr), r.err
		}},
	}
	fe := &testingexec.FakeExec{CommandScript: []testingexec.FakeCommandAction{
		func(cmd string, args ...string) utilexec.Cmd { return testingexec.InitFakeCmd(fc, cmd, args...) },
	}}
	return fe, fc
}

// fakeStat resolves device paths from a table; anything else does not exist.
func fakeStat(devs map[string]string) func(string) (string, error) {
	return func(p string) (string, error) {
		if mm, ok := devs[p]; ok {
			return mm, nil
		}
		return "", &os.PathError{Op: "stat", Path: p, Err: os.ErrNotExist}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	notFound = blkidResult{err: testingexec.FakeExitError{Status: 2}}
	ext4     = blkidResult{stdout: "DEVNAME=/dev/nvme0n1\nUUID=9b7e6c1a-2f1d-4c3b-8a55-0123456789ab\nVERSION=1.0\nBLOCK_SIZE=4096\nTYPE=ext4\nUSAGE=filesystem\n"}
	gpt      = blkidResult{stdout: "DEVNAME=/dev/nvme0n1\nPTUUID=3f6e2a10-1111-2222-3333-444455556666\nPTTYPE=gpt\n"}
	lvm      = blkidResult{stdout: "DEVNAME=/dev/nvme0n1\nUUID=Rk3cYb-1234-abcd-efgh-ijkl-mnop-qrstuv\nVERSION=LVM2 001\nTYPE=LVM2_member\nUSAGE=raid\n"}
)

func TestCheck(t *testing.T) {
	base := Namespace{Name: "nvme0n1", DevPath: "/dev/nvme0n1", MajorMinor: "259:0", Serial: "LNVTHICK0", NSID: 1}
	withPart := base
	withPart.Partitions = []string{"nvme0n1p1"}
	withPart.PartitionMajorMinor = map[string]string{"nvme0n1p1": "259:1"}
	devs := map[string]string{
		"/dev/nvme0n1":                 "259:0",
		"/dev/nvme0n1p1":               "259:1",
		"/dev/disk/by-id/nvme-LNV-ns1": "259:0",
		"/dev/dm-0":                    "253:0",
	}

	tests := []struct {
		name            string
		ns              Namespace
		mountinfo       string // appended to baseMountInfo; "-" = file missing
		swaps           string // appended to the header; "-" = file missing
		blkid           blkidResult
		stat            map[string]string // nil = devs
		want            []Reason
		detail          []string // substrings expected in Verdict.String()
		signature       map[string]string
		cancelBeforeRun bool
	}{
		{
			name:  "empty device",
			ns:    base,
			blkid: notFound,
		},
		{
			name:      "ext4 signature",
			ns:        base,
			blkid:     ext4,
			want:      []Reason{ReasonSignature},
			detail:    []string{`signature: blkid -p found TYPE="ext4" UUID="9b7e6c1a-2f1d-4c3b-8a55-0123456789ab"`},
			signature: map[string]string{"DEVNAME": "/dev/nvme0n1", "UUID": "9b7e6c1a-2f1d-4c3b-8a55-0123456789ab", "VERSION": "1.0", "BLOCK_SIZE": "4096", "TYPE": "ext4", "USAGE": "filesystem"},
		},
		{
			name:   "gpt partition table",
			ns:     base,
			blkid:  gpt,
			want:   []Reason{ReasonPartitionTable},
			detail: []string{`partition-table: blkid -p found PTTYPE="gpt"`},
		},
		{
			name:   "LVM2 member",
			ns:     base,
			blkid:  lvm,
			want:   []Reason{ReasonLVMMember},
			detail: []string{`TYPE="LVM2_member"`},
		},
		{
			name:      "mounted by the device's major:minor",
			ns:        base,
			mountinfo: "50 22 259:0 / /mnt/data rw,relatime shared:40 - ext4 /dev/nvme0n1 rw\n",
			blkid:     ext4,
			want:      []Reason{ReasonMounted, ReasonSignature},
			detail:    []string{"nvme0n1 (259:0) at /mnt/data (ext4)"},
		},
		{
			name:      "mounted by a partition's major:minor (source spelled differently)",
			ns:        withPart,
			mountinfo: "51 22 259:1 / /boot rw,relatime shared:41 - vfat /dev/disk/by-partuuid/abcd rw\n",
			blkid:     gpt,
			want:      []Reason{ReasonPartitions, ReasonMounted, ReasonPartitionTable},
			detail:    []string{"has-partitions: sysfs shows partitions nvme0n1p1", "nvme0n1p1 (259:1) at /boot (vfat)"},
		},
		{
			name:      "mounted by source path (btrfs reports an anonymous device number)",
			ns:        base,
			mountinfo: "52 22 0:48 /@home /home rw,relatime shared:42 - btrfs /dev/nvme0n1 rw\n",
			blkid:     notFound,
			want:      []Reason{ReasonMounted},
			detail:    []string{"nvme0n1 (0:48) at /home (btrfs)"},
		},
		{
			name:   "holders",
			ns:     func() Namespace { n := base; n.Holders = []string{"dm-0", "dm-1"}; return n }(),
			blkid:  notFound,
			want:   []Reason{ReasonHolders},
			detail: []string{"holders: held by dm-0, dm-1"},
		},
		{
			name:   "swap by path",
			ns:     base,
			swaps:  "/dev/nvme0n1                            partition\t8388604\t\t0\t\t-2\n",
			blkid:  notFound,
			want:   []Reason{ReasonSwap},
			detail: []string{"swap: nvme0n1 is active swap (/dev/nvme0n1)"},
		},
		{
			name:   "swap on a partition by major:minor via another name",
			ns:     withPart,
			swaps:  "/dev/disk/by-id/nvme-LNV-ns1           partition\t8388604\t\t0\t\t-2\n/dev/nvme0n1p1 partition 1024 0 -3\n",
			blkid:  gpt,
			want:   []Reason{ReasonPartitions, ReasonSwap, ReasonPartitionTable},
			detail: []string{"nvme0n1 is active swap (/dev/disk/by-id/nvme-LNV-ns1), nvme0n1p1 is active swap (/dev/nvme0n1p1)"},
		},
		{
			name:  "swap elsewhere (a file and another device) is fine",
			ns:    base,
			swaps: "/swap\\040file                           file\t\t1048572\t\t0\t\t-2\n/dev/dm-0 partition 1024 0 -3\n",
			blkid: notFound,
		},
		{
			name:   "read-only",
			ns:     func() Namespace { n := base; n.ReadOnly = true; return n }(),
			blkid:  notFound,
			want:   []Reason{ReasonReadOnly},
			detail: []string{"read-only: nvme0n1 is read-only"},
		},
		{
			name:   "blkid exit 4",
			ns:     base,
			blkid:  blkidResult{stderr: "blkid: unknown option\n", err: testingexec.FakeExitError{Status: 4}},
			want:   []Reason{ReasonProbeFailed},
			detail: []string{"probe-failed: blkid -p -o export /dev/nvme0n1: exit 4: blkid: unknown option"},
		},
		{
			name:   "blkid exit 8 ambivalent",
			ns:     base,
			blkid:  blkidResult{stderr: "blkid: /dev/nvme0n1: ambivalent result (probably more filesystems on the device, use wipefs(8) to see more details)\n", err: testingexec.FakeExitError{Status: 8}},
			want:   []Reason{ReasonProbeFailed},
			detail: []string{"ambivalent"},
		},
		{
			name:   "blkid could not run",
			ns:     base,
			blkid:  blkidResult{err: utilexec.ErrExecutableNotFound},
			want:   []Reason{ReasonProbeFailed},
			detail: []string{"did not complete: executable file not found"},
		},
		{
			name:   "blkid exit 2 with an error message is not empty",
			ns:     base,
			blkid:  blkidResult{stderr: "blkid: error: /dev/nvme0n1: Permission denied\n", err: testingexec.FakeExitError{Status: 2}},
			want:   []Reason{ReasonProbeFailed},
			detail: []string{"Permission denied"},
		},
		{
			name:   "device node missing: blkid's silent exit 2 is not trusted",
			ns:     base,
			blkid:  notFound,
			stat:   map[string]string{},
			want:   []Reason{ReasonProbeFailed, ReasonProbeFailed},
			detail: []string{"cannot verify device node: stat /dev/nvme0n1: file does not exist", "exit 2 (nothing found) but the device could not be probed"},
		},
		{
			name:   "device node is another device",
			ns:     base,
			blkid:  notFound,
			stat:   map[string]string{"/dev/nvme0n1": "259:7"},
			want:   []Reason{ReasonProbeFailed},
			detail: []string{"/dev/nvme0n1 is device 259:7 but sysfs says nvme0n1 is 259:0"},
		},
		{
			name:   "blkid exit 0 naming neither TYPE nor PTTYPE",
			ns:     base,
			blkid:  blkidResult{stdout: "DEVNAME=/dev/nvme0n1\nPART_ENTRY_SCHEME=dos\n"},
			want:   []Reason{ReasonSignature},
			detail: []string{"exited 0 without TYPE or PTTYPE"},
		},
		{
			name:      "mountinfo unreadable",
			ns:        base,
			mountinfo: "-",
			blkid:     notFound,
			want:      []Reason{ReasonProbeFailed},
			detail:    []string{"mountinfo"},
		},
		{
			name:  "no /proc/swaps (kernel without swap) is fine",
			ns:    base,
			swaps: "-",
			blkid: notFound,
		},
		{
			name:            "context cancelled",
			ns:              base,
			blkid:           notFound,
			cancelBeforeRun: true,
			want:            []Reason{ReasonProbeFailed},
			detail:          []string{"context canceled"},
		},
		{
			name: "every check runs: read-only, holders, partitions, mounted, swap and signature together",
			ns: func() Namespace {
				n := withPart
				n.ReadOnly = true
				n.Holders = []string{"md127"}
				return n
			}(),
			mountinfo: "53 22 259:1 / /srv rw - xfs /dev/nvme0n1p1 rw\n",
			swaps:     "/dev/nvme0n1 partition 1024 0 -2\n",
			blkid:     blkidResult{stdout: "DEVNAME=/dev/nvme0n1\nPTUUID=x\nPTTYPE=dos\nTYPE=linux_raid_member\n"},
			want:      []Reason{ReasonReadOnly, ReasonPartitions, ReasonHolders, ReasonMounted, ReasonSwap, ReasonPartitionTable, ReasonSignature},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mi := filepath.Join(dir, "mountinfo")
			if tc.mountinfo != "-" {
				writeFile(t, dir, "mountinfo", baseMountInfo+tc.mountinfo)
			}
			sw := filepath.Join(dir, "swaps")
			if tc.swaps != "-" {
				writeFile(t, dir, "swaps", swapsHeader+tc.swaps)
			}
			stat := tc.stat
			if stat == nil {
				stat = devs
			}
			fe, fc := fakeBlkid(tc.blkid)
			p := &Prober{Exec: fe, BlkidPath: "/usr/sbin/blkid", MountInfoPath: mi, SwapsPath: sw, StatDevice: fakeStat(stat)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelBeforeRun {
				cancel()
			}

			v := p.Check(ctx, tc.ns)

			var got []Reason
			for _, r := range v.Refusals {
				got = append(got, r.Reason)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reasons = %v, want %v (%s)", got, tc.want, v)
			}
			if v.Empty != (len(tc.want) == 0) {
				t.Errorf("Empty = %v with refusals %v", v.Empty, got)
			}
			if v.Has(ReasonProbeFailed) && v.Empty {
				t.Errorf("a failed probe must never be Empty: %s", v)
			}
			s := v.String()
			if len(tc.want) == 0 && s != "empty" {
				t.Errorf("String() = %q, want empty", s)
			}
			if len(tc.want) > 0 && !strings.HasPrefix(s, "refused: ") {
				t.Errorf("String() = %q", s)
			}
			for _, d := range tc.detail {
				if !strings.Contains(s, d) {
					t.Errorf("String() = %q, missing %q", s, d)
				}
			}
			if tc.signature != nil && !reflect.DeepEqual(v.Signature, tc.signature) {
				t.Errorf("Signature = %v, want %v", v.Signature, tc.signature)
			}
			if !reflect.DeepEqual(fc.RunLog, [][]string{{"/usr/sbin/blkid", "-p", "-o", "export", "/dev/nvme0n1"}}) {
				t.Errorf("blkid runs = %q", fc.RunLog)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	tests := []struct {
		name      string
		blkid     blkidResult
		stat      map[string]string
		kv        map[string]string
		found     bool
		wantErr   string
		exitCode  int
		ambivalen bool
	}{
		{
			name:  "filesystem with escaped label",
			blkid: blkidResult{stdout: "DEVNAME=/dev/vg/lv\nLABEL=my\\ data\nUUID=abc\nTYPE=xfs\n"},
			kv:    map[string]string{"DEVNAME": "/dev/vg/lv", "LABEL": "my data", "UUID": "abc", "TYPE": "xfs"},
			found: true,
		},
		{name: "nothing found", blkid: notFound, stat: map[string]string{"/dev/vg/lv": "253:3"}},
		{name: "nothing found but the path does not exist", blkid: notFound, stat: map[string]string{}, wantErr: "does not exist", exitCode: 2},
		{name: "exit 2 with stderr", blkid: blkidResult{stderr: "blkid: error: /dev/vg/lv: Input/output error", err: testingexec.FakeExitError{Status: 2}}, wantErr: "Input/output error", exitCode: 2},
		{name: "exit 4", blkid: blkidResult{stderr: "bad usage", err: testingexec.FakeExitError{Status: 4}}, wantErr: "exit 4: bad usage", exitCode: 4},
		{name: "exit 8", blkid: blkidResult{err: testingexec.FakeExitError{Status: 8}}, wantErr: "ambivalent", exitCode: 8, ambivalen: true},
		{name: "failed to start", blkid: blkidResult{err: errors.New("fork/exec /sbin/blkid: permission denied")}, wantErr: "permission denied", exitCode: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe, fc := fakeBlkid(tc.blkid)
			p := &Prober{Exec: fe, StatDevice: fakeStat(tc.stat)}
			kv, found, err := p.Signature(context.Background(), "/dev/vg/lv")
			if want := [][]string{{"blkid", "-p", "-o", "export", "/dev/vg/lv"}}; !reflect.DeepEqual(fc.RunLog, want) {
				t.Errorf("runs = %q, want %q", fc.RunLog, want)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				var be *BlkidError
				if !errors.As(err, &be) || be.ExitCode != tc.exitCode || be.Ambivalent() != tc.ambivalen {
					t.Errorf("err = %#v", err)
				}
				if found || kv != nil {
					t.Errorf("found=%v kv=%v alongside an error", found, kv)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found || !reflect.DeepEqual(kv, tc.kv) {
				t.Errorf("kv=%v found=%v, want %v %v", kv, found, tc.kv, tc.found)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	if s := (Verdict{Empty: true}).String(); s != "empty" {
		t.Errorf("got %q", s)
	}
	v := Verdict{Refusals: []Refusal{{ReasonHolders, "held by dm-0"}, {ReasonSignature, `blkid -p found TYPE="ext4"`}}}
	if s, want := v.String(), `refused: holders: held by dm-0; signature: blkid -p found TYPE="ext4"`; s != want {
		t.Errorf("got %q, want %q", s, want)
	}
	if s := (Verdict{}).String(); s == "empty" {
		t.Errorf("zero Verdict must not read as empty")
	}
}

func TestReadSwapsUnescapes(t *testing.T) {
	p := writeFile(t, t.TempDir(), "swaps", swapsHeader+"/var/my\\040swap file 1024 0 -2\n/dev/nvme0n1p2 partition 1024 0 -3\n")
	got, err := readSwaps(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/var/my swap", "/dev/nvme0n1p2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRealBlkid runs the real blkid (when installed) against image files, to pin down the
// exit codes the fakes above assume.
func TestRealBlkid(t *testing.T) {
	blkid, err := exec.LookPath("blkid")
	if err != nil {
		t.Skip("blkid not installed")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prober{
		Exec:          utilexec.New(),
		BlkidPath:     blkid,
		MountInfoPath: writeFile(t, dir, "mountinfo", baseMountInfo),
		SwapsPath:     writeFile(t, dir, "swaps", swapsHeader),
		StatDevice:    fakeStat(map[string]string{img: "7:0"}),
	}
	ns := Namespace{Name: "loop0", DevPath: img, MajorMinor: "7:0"}
	if v := p.Check(context.Background(), ns); !v.Empty {
		t.Fatalf("zeroed image: %s", v)
	}

	// A path that does not exist: blkid exits 2 without a word; we must not call that empty.
	missing := Namespace{Name: "nvme9n9", DevPath: filepath.Join(dir, "nope"), MajorMinor: "259:99"}
	if v := p.Check(context.Background(), missing); v.Empty || !v.Has(ReasonProbeFailed) {
		t.Fatalf("missing device: %s", v)
	}

	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 failed: %v: %s", err, out)
	}
	v := p.Check(context.Background(), ns)
	if v.Empty || !v.Has(ReasonSignature) || v.Signature["TYPE"] != "ext4" {
		t.Fatalf("ext4 image: %s (%v)", v, v.Signature)
	}
	t.Log(v)
}
