package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2/ktesting"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/localnvme/localnvme/pkg/registration"
)

func TestStartRegistration(t *testing.T) {
	for _, tc := range []struct {
		name    string
		blocker bool // a regular file sits at the registration socket path
	}{
		{"registers after the CSI socket answers", false},
		{"failure cancels the node plugin", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			csiSocket := filepath.Join(dir, "csi.sock")
			reg, err := registration.New(registration.Options{DriverName: "localnvme.io", RegistrationDir: dir, KubeletEndpoint: csiSocket})
			if err != nil {
				t.Fatal(err)
			}
			if tc.blocker {
				if err := os.WriteFile(reg.Socket(), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := startRegistration(ctx, cancel, reg, csiSocket)

			time.Sleep(200 * time.Millisecond)
			if _, err := os.Lstat(reg.Socket()); !tc.blocker && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("registration socket exists before the CSI socket: %v", err)
			}
			lis, err := net.Listen("unix", csiSocket) // the CSI server comes up
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			go func() {
				for {
					c, err := lis.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()

			if tc.blocker {
				select {
				case err := <-done:
					if err == nil || ctx.Err() == nil {
						t.Fatalf("err = %v, ctx cancelled = %v; want an error and a cancelled context", err, ctx.Err() != nil)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("registration did not fail")
				}
				return
			}
			conn, err := grpc.NewClient("unix://"+reg.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			info, err := registerapi.NewRegistrationClient(conn).GetInfo(cctx, &registerapi.InfoRequest{}, grpc.WaitForReady(true))
			if err != nil || info.Endpoint != csiSocket {
				t.Fatalf("GetInfo = %v, %v", info, err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("registration returned %v after cancel", err)
			}
			if _, err := os.Lstat(reg.Socket()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("registration socket left behind: %v", err)
			}
		})
	}
}
