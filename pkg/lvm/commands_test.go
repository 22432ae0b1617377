package lvm

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	utilexec "k8s.io/utils/exec"
)

const testConfig = "devices{use_devicesfile=0}"

func TestMutationCommandLines(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *Client) error
		want []string // after `lvm <sub>` and the --config option
	}{
		{"pvcreate", func(c *Client) error { return c.PVCreate(ctx, "/dev/nvme0n1", 8<<20, "") },
			[]string{"pvcreate", "--metadatasize", "8388608b", "/dev/nvme0n1"}},
		{"pvcreate default metadata size", func(c *Client) error { return c.PVCreate(ctx, "/dev/nvme0n1", 0, "") },
			[]string{"pvcreate", "/dev/nvme0n1"}},
		{"pvcreate with uuid", func(c *Client) error {
			return c.PVCreate(ctx, "/dev/nvme0n1", 8<<20, "aB3dE9-0000-1111-2222-3333-4444-zZ9yX8")
		}, []string{"pvcreate", "--metadatasize", "8388608b", "--uuid", "aB3dE9-0000-1111-2222-3333-4444-zZ9yX8", "--norestorefile", "/dev/nvme0n1"}},
		{"vgcreate", func(c *Client) error {
			return c.VGCreate(ctx, "nvmevg", []string{"/dev/nvme0n1", "/dev/nvme1n1"}, []string{"localnvme", "node=a"})
		}, []string{"vgcreate", "--addtag", "localnvme", "--addtag", "node=a", "nvmevg", "/dev/nvme0n1", "/dev/nvme1n1"}},
		{"vgcreate no tags", func(c *Client) error { return c.VGCreate(ctx, "nvmevg", []string{"/dev/nvme0n1"}, nil) },
			[]string{"vgcreate", "nvmevg", "/dev/nvme0n1"}},
		{"vgextend", func(c *Client) error { return c.VGExtend(ctx, "nvmevg", []string{"/dev/nvme2n1", "/dev/nvme3n1"}) },
			[]string{"vgextend", "nvmevg", "/dev/nvme2n1", "/dev/nvme3n1"}},
		{"vgreduce", func(c *Client) error { return c.VGReduce(ctx, "nvmevg", []string{"/dev/nvme3n1"}) },
			[]string{"vgreduce", "nvmevg", "/dev/nvme3n1"}},
		{"vgremove", func(c *Client) error { return c.VGRemove(ctx, "nvmevg") }, []string{"vgremove", "nvmevg"}},
		{"pvremove", func(c *Client) error { return c.PVRemove(ctx, "/dev/nvme3n1") }, []string{"pvremove", "/dev/nvme3n1"}},
		{"lvcreate thick", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "nvmevg", Name: "pvc-1", Size: 1 << 30, Tags: []string{"localnvme", "pvc=ns/name"}})
		}, []string{"lvcreate", "--yes", "-ay", "-Zy", "-Wy", "--addtag", "localnvme", "--addtag", "pvc=ns/name", "-L", "1073741824b", "-n", "pvc-1", "nvmevg"}},
		{"lvcreate striped", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "nvmevg", Name: "s", Size: 4 << 30, Stripes: 2, StripeSize: 64 << 10})
		}, []string{"lvcreate", "--yes", "-ay", "-Zy", "-Wy", "-i", "2", "-I", "65536b", "-L", "4294967296b", "-n", "s", "nvmevg"}},
		{"lvcreate striped default stripe size", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "nvmevg", Name: "s", Size: 4 << 30, Stripes: 4})
		}, []string{"lvcreate", "--yes", "-ay", "-Zy", "-Wy", "-i", "4", "-L", "4294967296b", "-n", "s", "nvmevg"}},
		{"lvcreate single stripe ignores stripe size", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "nvmevg", Name: "s", Size: 4096, Stripes: 1, StripeSize: 65536})
		}, []string{"lvcreate", "--yes", "-ay", "-Zy", "-Wy", "-L", "4096b", "-n", "s", "nvmevg"}},
		{"lvcreate thin", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "nvmevg", Name: "t1", Size: 10 << 30, ThinPool: "pool0", Tags: []string{"localnvme"}})
		}, []string{"lvcreate", "--yes", "-ay", "--addtag", "localnvme", "-V", "10737418240b", "--thinpool", "pool0", "-n", "t1", "nvmevg"}},
		{"thin pool", func(c *Client) error { return c.CreateThinPool(ctx, "nvmevg", "pool0", 95, []string{"localnvme-pool"}) },
			[]string{"lvcreate", "--yes", "--type", "thin-pool", "-l", "95%FREE", "--zero", "y", "--addtag", "localnvme-pool", "-n", "pool0", "nvmevg"}},
		{"thin snapshot", func(c *Client) error {
			return c.CreateSnapshot(ctx, "nvmevg", "t1", "snap1", 0, []string{"snapshot=x"})
		},
			[]string{"lvcreate", "-s", "-kn", "-ay", "--addtag", "snapshot=x", "-n", "snap1", "nvmevg/t1"}},
		{"cow snapshot", func(c *Client) error { return c.CreateSnapshot(ctx, "nvmevg", "thick", "snap1", 1<<30, nil) },
			[]string{"lvcreate", "-s", "-L", "1073741824b", "-n", "snap1", "nvmevg/thick"}},
		{"lvremove", func(c *Client) error { return c.RemoveLV(ctx, "nvmevg", "pvc-1") },
			[]string{"lvremove", "-f", "nvmevg/pvc-1"}},
		{"lvextend", func(c *Client) error { return c.ExtendLV(ctx, "nvmevg", "pvc-1", 2<<30) },
			[]string{"lvextend", "-L", "2147483648b", "nvmevg/pvc-1"}},
		{"lvextend onto ranges", func(c *Client) error {
			return c.ExtendLVOnto(ctx, ExtendLVOptions{VG: "nvmevg", Name: "pvc-1", Size: 2 << 30, Ranges: []PERange{{PV: "/dev/nvme0n1", First: 256, Last: 511}}})
		}, []string{"lvextend", "-i", "1", "-L", "2147483648b", "nvmevg/pvc-1", "/dev/nvme0n1:256-511"}},
		{"lvextend onto striped ranges", func(c *Client) error {
			return c.ExtendLVOnto(ctx, ExtendLVOptions{VG: "nvmevg", Name: "pvc-1", Size: 96 << 20, Stripes: 2, StripeSize: 64 << 10, Ranges: []PERange{
				{PV: "/dev/nvme0n1", First: 5, Last: 6}, {PV: "/dev/nvme1n1", First: 5, Last: 6}, {PV: "/dev/nvme0n1", First: 12, Last: 12}, {PV: "/dev/nvme1n1", First: 12, Last: 12}}})
		}, []string{"lvextend", "-i", "2", "-I", "65536b", "-L", "100663296b", "nvmevg/pvc-1", "/dev/nvme0n1:5-6", "/dev/nvme1n1:5-6", "/dev/nvme0n1:12-12", "/dev/nvme1n1:12-12"}},
		{"addtag", func(c *Client) error { return c.AddTags(ctx, "nvmevg", "pvc-1", []string{"a=b", "c"}) },
			[]string{"lvchange", "--addtag", "a=b", "--addtag", "c", "nvmevg/pvc-1"}},
		{"deltag", func(c *Client) error { return c.DeleteTags(ctx, "nvmevg", "pvc-1", []string{"a=b"}) },
			[]string{"lvchange", "--deltag", "a=b", "nvmevg/pvc-1"}},
		{"activate", func(c *Client) error { return c.Activate(ctx, "nvmevg", "pvc-1") },
			[]string{"lvchange", "-ay", "-K", "nvmevg/pvc-1"}},
		{"deactivate", func(c *Client) error { return c.Deactivate(ctx, "nvmevg", "pvc-1") },
			[]string{"lvchange", "-an", "nvmevg/pvc-1"}},
		{"vgchange", func(c *Client) error { return c.VGChangeActivate(ctx, "nvmevg") },
			[]string{"vgchange", "-ay", "-K", "nvmevg"}},
	}
	for _, tc := range tests {
		for _, withConfig := range []bool{false, true} {
			name := tc.name
			if withConfig {
				name += "/config"
			}
			t.Run(name, func(t *testing.T) {
				f := newFake(t, result{})
				opts := Options{}
				want := append([]string{"lvm"}, tc.want...)
				if withConfig {
					opts = Options{LVMPath: "/usr/sbin/lvm", Config: testConfig}
					want = append([]string{"/usr/sbin/lvm", tc.want[0], "--config", testConfig}, tc.want[1:]...)
				}
				c := New(f.fe, opts)
				if err := tc.call(c); err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if f.calls() != 1 {
					t.Fatalf("want 1 command, got %d", f.calls())
				}
				if got := f.argv(0); !reflect.DeepEqual(got, want) {
					t.Errorf("argv:\n got %q\nwant %q", got, want)
				}
				assertEnv(t, f.env(0))
			})
		}
	}
}

func assertEnv(t *testing.T, env []string) {
	t.Helper()
	// The last LC_ALL assignment wins with os/exec.
	lcAll := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "LC_ALL="); ok {
			lcAll = v
		}
	}
	if lcAll != "C" {
		t.Errorf("effective LC_ALL = %q, want C (env %q)", lcAll, env)
	}
	if len(env) < len(os.Environ())+1 {
		t.Errorf("process environment not passed through: %q", env)
	}
}

func TestNoopTagChanges(t *testing.T) {
	c := New(newFake(t).fe, Options{}) // no scripted commands: running one panics
	if err := c.AddTags(context.Background(), "vg", "lv", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTags(context.Background(), "vg", "lv", []string{}); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *Client) error
	}{
		{"pvcreate relative dev", func(c *Client) error { return c.PVCreate(ctx, "nvme0n1", 0, "") }},
		{"pvcreate option as dev", func(c *Client) error { return c.PVCreate(ctx, "--yes", 0, "") }},
		{"pvcreate short uuid", func(c *Client) error { return c.PVCreate(ctx, "/dev/nvme0n1", 0, "abc-def") }},
		{"pvcreate uuid with option", func(c *Client) error {
			return c.PVCreate(ctx, "/dev/nvme0n1", 0, "--yes00000000000000000000000000000")
		}},
		{"pvcreate uuid with space", func(c *Client) error {
			return c.PVCreate(ctx, "/dev/nvme0n1", 0, "aB3dE9 0000111122223333444455zZ9yX8")
		}},
		{"vgcreate no devs", func(c *Client) error { return c.VGCreate(ctx, "vg", nil, nil) }},
		{"vgcreate bad name", func(c *Client) error { return c.VGCreate(ctx, "-ff", []string{"/dev/x"}, nil) }},
		{"vgcreate bad tag", func(c *Client) error { return c.VGCreate(ctx, "vg", []string{"/dev/x"}, []string{"a b"}) }},
		{"vgextend bad dev", func(c *Client) error { return c.VGExtend(ctx, "vg", []string{""}) }},
		{"lvcreate zero size", func(c *Client) error { return c.CreateLV(ctx, CreateLVOptions{VG: "vg", Name: "lv"}) }},
		{"lvcreate bad lv name", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "vg", Name: "a/b", Size: 1})
		}},
		{"lvcreate bad pool", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "vg", Name: "lv", Size: 1, ThinPool: "-x"})
		}},
		{"lvcreate thin striped", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "vg", Name: "lv", Size: 1, ThinPool: "p", Stripes: 2})
		}},
		{"lvcreate bad tag", func(c *Client) error {
			return c.CreateLV(ctx, CreateLVOptions{VG: "vg", Name: "lv", Size: 1, Tags: []string{"ä"}})
		}},
		{"thin pool 0%", func(c *Client) error { return c.CreateThinPool(ctx, "vg", "p", 0, nil) }},
		{"thin pool 101%", func(c *Client) error { return c.CreateThinPool(ctx, "vg", "p", 101, nil) }},
		{"snapshot bad origin", func(c *Client) error { return c.CreateSnapshot(ctx, "vg", "", "s", 0, nil) }},
		{"snapshot bad tag", func(c *Client) error { return c.CreateSnapshot(ctx, "vg", "o", "s", 0, []string{"x,y"}) }},
		{"lvremove bad vg", func(c *Client) error { return c.RemoveLV(ctx, "", "lv") }},
		{"lvextend zero", func(c *Client) error { return c.ExtendLV(ctx, "vg", "lv", 0) }},
		{"lvextend onto no ranges", func(c *Client) error {
			return c.ExtendLVOnto(ctx, ExtendLVOptions{VG: "vg", Name: "lv", Size: 1 << 30})
		}},
		{"lvextend onto a relative PV", func(c *Client) error {
			return c.ExtendLVOnto(ctx, ExtendLVOptions{VG: "vg", Name: "lv", Size: 1 << 30, Ranges: []PERange{{PV: "nvme0n1", First: 0, Last: 1}}})
		}},
		{"lvextend onto a reversed range", func(c *Client) error {
			return c.ExtendLVOnto(ctx, ExtendLVOptions{VG: "vg", Name: "lv", Size: 1 << 30, Ranges: []PERange{{PV: "/dev/nvme0n1", First: 2, Last: 1}}})
		}},
		{"segments of a bad LV name", func(c *Client) error { _, err := c.Segments(ctx, "vg", "a/b"); return err }},
		{"addtag bad", func(c *Client) error { return c.AddTags(ctx, "vg", "lv", []string{""}) }},
		{"activate bad", func(c *Client) error { return c.Activate(ctx, "vg", "..") }},
		{"deactivate bad", func(c *Client) error { return c.Deactivate(ctx, "v g", "lv") }},
		{"vgchange bad", func(c *Client) error { return c.VGChangeActivate(ctx, "") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			err := tc.call(New(f.fe, Options{}))
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("want ErrInvalidArgument, got %v", err)
			}
			if f.calls() != 0 {
				t.Fatalf("lvm must not run, ran %d commands", f.calls())
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	// stderr texts are real lvm 2.03.16 messages unless noted.
	tests := []struct {
		name   string
		stderr string
		exit   int
		want   error
	}{
		{"lv not found (lvremove)", `  Failed to find logical volume "lnvtestvg/nope"`, 5, ErrNotFound},
		{"vg not found", "  Volume group \"novg\" not found\n  Cannot process volume group novg", 5, ErrNotFound},
		{"lv not found (lvextend)", "  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n  Logical volume nope not found in volume group lnvtestvg.", 5, ErrNotFound},
		{"thin pool not found", "  Pool pool0 not found in Volume group lnvtestvg.", 5, ErrNotFound},
		{"device not found", "  No device found for /dev/nonexist.", 5, ErrNotFound},
		{"lv exists", `  Logical Volume "lv1" already exists in volume group "lnvtestvg"`, 5, ErrAlreadyExists},
		{"vg exists", "  A volume group called lnvtestvg already exists.", 5, ErrAlreadyExists},
		{"vg has insufficient free space", `  Volume group "lnvtestvg" has insufficient free space (74 extents): 2048 required.`, 5, ErrInsufficientSpace},
		{"extend insufficient", "  Insufficient free space: 2044 extents needed, but only 74 available", 5, ErrInsufficientSpace},
		{"allocatable extents (lvm text)", "  Insufficient suitable allocatable extents for logical volume lv: 100 more required", 5, ErrInsufficientSpace},
		{"allocatable extents lower case (lvm text)", "  insufficient suitable allocatable extents found", 5, ErrInsufficientSpace},
		{"extend onto ranges partly taken", "  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n  Insufficient free space: 2 extents needed, but only 1 available", 5, ErrInsufficientSpace},
		{"extend onto ranges all taken", "  WARNING: No free extents on physical volume \"/dev/loop1\".\n  No specified PVs have space available.", 5, ErrInsufficientSpace},
		{"thin pool threshold (lvm text)", "  Cannot create new thin volume, free space in thin pool vg/pool0 reached threshold.", 5, ErrInsufficientSpace},
		{"warning-only not found is ignored", "  WARNING: Device for PV rHjHg2-wff3 not found or rejected by a filter.\n  Can't initialize physical volume \"/dev/loop0\" of volume group \"vg\" without -ff", 5, nil},
		{"unclassified", "  Can't initialize physical volume \"/dev/loop0\" of volume group \"lnvtestvg\" without -ff\n  /dev/loop0: physical volume not initialized.", 5, nil},
		{"other exit code", "  Volume group \"novg\" not found", 3, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, result{stderr: tc.stderr + "\n", exit: tc.exit})
			c := New(f.fe, Options{})
			err := c.RemoveLV(context.Background(), "lnvtestvg", "nope")
			if err == nil {
				t.Fatal("want error")
			}
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("want *Error, got %T %v", err, err)
			}
			if lerr.ExitCode != tc.exit {
				t.Errorf("ExitCode = %d, want %d", lerr.ExitCode, tc.exit)
			}
			if !errors.Is(lerr.Kind, tc.want) {
				t.Errorf("Kind = %v, want %v", lerr.Kind, tc.want)
			}
			for _, k := range []error{ErrNotFound, ErrAlreadyExists, ErrInsufficientSpace} {
				if got := errors.Is(err, k); got != errors.Is(k, tc.want) {
					t.Errorf("errors.Is(err, %v) = %v", k, got)
				}
			}
			if !reflect.DeepEqual(lerr.Args, []string{"lvremove", "-f", "lnvtestvg/nope"}) {
				t.Errorf("Args = %q", lerr.Args)
			}
			if lerr.Stderr != strings.TrimSpace(tc.stderr) {
				t.Errorf("Stderr = %q", lerr.Stderr)
			}
			msg := err.Error()
			for _, s := range []string{"lvremove -f lnvtestvg/nope", "exit code " + strconv.Itoa(tc.exit), strings.TrimSpace(tc.stderr)} {
				if !strings.Contains(msg, s) {
					t.Errorf("Error() = %q, missing %q", msg, s)
				}
			}
		})
	}
}

func TestNonExitError(t *testing.T) {
	f := newFake(t, result{err: utilexec.ErrExecutableNotFound})
	c := New(f.fe, Options{})
	err := c.VGChangeActivate(context.Background(), "vg")
	var lerr *Error
	if !errors.As(err, &lerr) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	if lerr.ExitCode != -1 || lerr.Kind != nil {
		t.Errorf("ExitCode=%d Kind=%v, want -1 and nil", lerr.ExitCode, lerr.Kind)
	}
	if !errors.Is(err, utilexec.ErrExecutableNotFound) {
		t.Errorf("underlying exec error not reachable: %v", err)
	}
	if !strings.Contains(err.Error(), utilexec.ErrExecutableNotFound.Error()) {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestValidTag(t *testing.T) {
	tests := []struct {
		tag  string
		want bool
	}{
		{"localnvme", true},
		{"pvc=ns/name", true},
		{"A-Za-z0-9_+.-/=!:&#", true},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
		{"", false},
		{"a b", false},
		{"a,b", false},
		{"a@b", false},
		{"ü", false},
		{"a\nb", false},
	}
	for _, tc := range tests {
		if got := ValidTag(tc.tag); got != tc.want {
			t.Errorf("ValidTag(%q) = %v, want %v", tc.tag, got, tc.want)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"nvmevg", true},
		{"pvc-0a1b_2.c+d", true},
		{strings.Repeat("a", 127), true},
		{strings.Repeat("a", 128), false},
		{"", false},
		{"-n", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a=b", false},
	}
	for _, tc := range tests {
		if got := ValidName(tc.name); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
