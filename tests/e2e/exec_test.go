//go:build e2e

package e2e

// Exec into a container with client-go's remotecommand, as kubectl exec does: the websocket
// executor (v5.channel.k8s.io), falling back to SPDY when the websocket upgrade fails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	// Not k8s.io/apimachinery/pkg/util/httpstream (deprecated): its UpgradeFailureError is
	// a type of its own, and client-go's websocket executor returns this package's.
	"k8s.io/streaming/pkg/httpstream"
)

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("exit code %d: %s", e.Code, strings.TrimSpace(e.Stderr))
}

// lockedBuffer is a bytes.Buffer that the stream goroutines may still write to when
// StreamWithContext returns early (context done) and the caller reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// execPod runs cmd in a container and returns its stdout and stderr. A non-zero exit is an
// *ExitError; anything else that goes wrong (pod gone, protocol, network) is another error.
func execPod(ctx context.Context, ns, pod, container string, cmd []string) (string, string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	u := kube.CoreV1().RESTClient().Post().
		Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec).URL()

	// The websocket executor upgrades with GET, SPDY with POST (see kubectl's exec).
	wsExec, err := remotecommand.NewWebSocketExecutor(restConfig, http.MethodGet, u.String())
	if err != nil {
		return "", "", fmt.Errorf("exec %s/%s: %w", ns, pod, err)
	}
	spdyExec, err := remotecommand.NewSPDYExecutor(restConfig, http.MethodPost, u)
	if err != nil {
		return "", "", fmt.Errorf("exec %s/%s: %w", ns, pod, err)
	}
	executor, err := remotecommand.NewFallbackExecutor(wsExec, spdyExec, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return "", "", fmt.Errorf("exec %s/%s: %w", ns, pod, err)
	}

	var stdout, stderr lockedBuffer
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	outS, errS := stdout.String(), stderr.String()
	if err == nil {
		return outS, errS, nil
	}
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return outS, errS, &ExitError{Code: exitErr.ExitStatus(), Stderr: errS}
	}
	return outS, errS, fmt.Errorf("exec %s/%s %q: %w", ns, pod, cmd, err)
}
