//go:build vmtest

package vm

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/localnvme/localnvme/pkg/config"
	"github.com/localnvme/localnvme/pkg/node"
)

// The crash tests run the node plugin as a child process, so it can be killed (SIGKILL, at a
// crash point) without killing the test: the test binary runs itself again with these
// variables set, and TestMain serves the node instead of running tests.
const (
	// crashChildConfigEnv is the path of the child's device-class configuration (YAML).
	crashChildConfigEnv = "LOCALNVME_CRASH_CHILD_CONFIG"
	// crashChildSocketEnv is the unix socket the child serves CSI on.
	crashChildSocketEnv = "LOCALNVME_CRASH_CHILD_SOCKET"
)

// crashChildRequested reports whether this process is a crash-test child.
func crashChildRequested() bool { return os.Getenv(crashChildConfigEnv) != "" }

// runCrashChild builds the node exactly as startNodeWith does (node.Build, the same
// options) and serves it on the socket until SIGTERM; its logs go to stderr, which the test
// keeps. The exit code is 0 after SIGTERM, 3 on a setup error.
func runCrashChild() int {
	if os.Getenv("LOCALNVME_IN_VM") != "1" {
		fmt.Fprintln(os.Stderr, "crash child: LOCALNVME_IN_VM is not set; refusing to touch this machine's devices")
		return 3
	}
	b, err := os.ReadFile(os.Getenv(crashChildConfigEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		return 3
	}
	cfg, err := config.Parse(b)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: config: %v\n", err)
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background().WithValues("crashChild", os.Getpid()))
	n, err := node.Build(ctx, node.Options{Config: cfg, NodeID: *nodeName, Version: "vmtest"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: building node: %v\n", err)
		return 3
	}
	if err := n.Driver.Serve(ctx, "unix://"+os.Getenv(crashChildSocketEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: serving: %v\n", err)
		return 3
	}
	klog.Flush()
	return 0
}
