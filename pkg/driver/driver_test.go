package driver

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/localnvme/localnvme/pkg/volume"
)

func TestFormatCommand(t *testing.T) {
	tests := []struct {
		fs       string
		wantArgv []string
		wantErr  bool
	}{
		{"ext4", []string{"mkfs.ext4", "-q", "-m", "0", "/dev/vg/lv"}, false},
		{"xfs", []string{"mkfs.xfs", "-q", "/dev/vg/lv"}, false},
		{"btrfs", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.fs, func(t *testing.T) {
			var got []string
			var fc *testingexec.FakeCmd
			fake := &testingexec.FakeExec{ExactOrder: true}
			if !tt.wantErr {
				fake.CommandScript = []testingexec.FakeCommandAction{func(cmd string, args ...string) exec.Cmd {
					fc = &testingexec.FakeCmd{RunScript: []testingexec.FakeAction{func() ([]byte, []byte, error) {
						return nil, nil, nil
					}}}
					got = append([]string{cmd}, args...)
					return testingexec.InitFakeCmd(fc, cmd, args...)
				}}
			}
			err := (&filesystems{exec: fake}).format(context.Background(), tt.fs, "/dev/vg/lv")
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error for unsupported filesystem")
				}
				if fake.CommandCalls != 0 {
					t.Fatal("mkfs ran for an unsupported filesystem")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.wantArgv) {
				t.Errorf("argv = %q, want %q", got, tt.wantArgv)
			}
			for _, a := range got {
				if a == "-F" || a == "-f" {
					t.Errorf("mkfs must never be forced: %q", got)
				}
			}
			if fc.Stdin == nil {
				t.Error("mkfs must get an empty stdin so it cannot be talked into proceeding")
			}
		})
	}
}

func TestFormatFailureIsReported(t *testing.T) {
	fake := &testingexec.FakeExec{CommandScript: []testingexec.FakeCommandAction{func(cmd string, args ...string) exec.Cmd {
		fc := &testingexec.FakeCmd{RunScript: []testingexec.FakeAction{func() ([]byte, []byte, error) {
			return []byte("/dev/vg/lv contains a ext4 file system\nProceed anyway? (y,N)"), nil, &testingexec.FakeExitError{Status: 1}
		}}}
		return testingexec.InitFakeCmd(fc, cmd, args...)
	}}}
	err := (&filesystems{exec: fake}).format(context.Background(), "ext4", "/dev/vg/lv")
	if err == nil || !strings.Contains(err.Error(), "Proceed anyway") {
		t.Fatalf("format error = %v, want mkfs output in it", err)
	}
}

func TestMountOptions(t *testing.T) {
	tests := []struct {
		fs    string
		flags []string
		ro    bool
		want  []string
	}{
		{"ext4", nil, false, []string{}},
		{"ext4", []string{"noatime"}, true, []string{"noatime", "ro"}},
		{"xfs", nil, false, []string{"nouuid"}},
		{"xfs", []string{"discard"}, false, []string{"discard", "nouuid"}},
	}
	for _, tt := range tests {
		if got := mountOptions(tt.fs, tt.flags, tt.ro); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("mountOptions(%s, %v, %v) = %v, want %v", tt.fs, tt.flags, tt.ro, got, tt.want)
		}
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{volume.ErrNotFound, codes.NotFound},
		{volume.ErrAlreadyExists, codes.AlreadyExists},
		{volume.ErrInvalid, codes.InvalidArgument},
		{volume.ErrOutOfRange, codes.OutOfRange},
		{volume.ErrNoSpace, codes.ResourceExhausted},
		{volume.ErrPrecondition, codes.FailedPrecondition},
		{volume.ErrUnavailable, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("lvm exploded"), codes.Internal},
		{status.Error(codes.Aborted, "kept"), codes.Aborted},
	}
	for _, tt := range tests {
		wrapped := tt.err
		if _, ok := status.FromError(tt.err); !ok {
			wrapped = errors.Join(errors.New("context"), tt.err)
		}
		if got := status.Code(toStatus(wrapped)); got != tt.want {
			t.Errorf("toStatus(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPage(t *testing.T) {
	id := func(c string) string {
		return "c.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.v" + strings.Repeat(c, 24) + ".bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	}
	ids := []string{id("1"), id("2"), id("3"), id("4"), id("5")}
	tests := []struct {
		name     string
		start    string
		max      int32
		from, to int
		next     string
		code     codes.Code
	}{
		{"all", "", 0, 0, 5, "", codes.OK},
		{"first page", "", 2, 0, 2, ids[2], codes.OK},
		{"second page", ids[2], 2, 2, 4, ids[4], codes.OK},
		{"last page", ids[4], 2, 4, 5, "", codes.OK},
		{"token of a deleted entry", id("3")[:len(id("3"))-1] + "c", 10, 3, 5, "", codes.OK},
		{"invalid token", "invalid-token", 0, 0, 0, "", codes.Aborted},
		{"negative max", "", -1, 0, 0, "", codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, next, err := page(ids, tt.start, tt.max)
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v, want %v", status.Code(err), tt.code)
			}
			if err == nil && (from != tt.from || to != tt.to || next != tt.next) {
				t.Errorf("page = (%d, %d, %q), want (%d, %d, %q)", from, to, next, tt.from, tt.to, tt.next)
			}
		})
	}
}

func TestCheckAccessibility(t *testing.T) {
	d := &Driver{nodeID: "n1"}
	topo := func(n string) *csi.Topology { return &csi.Topology{Segments: map[string]string{TopologyKey: n}} }
	tests := []struct {
		name string
		req  *csi.TopologyRequirement
		want codes.Code
	}{
		{"none", nil, codes.OK},
		{"empty", &csi.TopologyRequirement{}, codes.OK},
		{"this node requisite", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo("n2"), topo("n1")}}, codes.OK},
		{"this node preferred", &csi.TopologyRequirement{Preferred: []*csi.Topology{topo("n1")}}, codes.OK},
		{"other key only", &csi.TopologyRequirement{Requisite: []*csi.Topology{{Segments: map[string]string{"zone": "a"}}}}, codes.OK},
		{"other node", &csi.TopologyRequirement{Requisite: []*csi.Topology{topo("n2")}}, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		err := d.checkAccessibility(tt.req)
		if status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if tt.want != codes.OK && !strings.Contains(status.Convert(err).Message(), `"n1"`) {
			t.Errorf("%s: message does not name this node: %v", tt.name, err)
		}
	}
}
