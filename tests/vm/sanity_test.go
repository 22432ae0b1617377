//go:build vmtest

package vm

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

var sanityConfig = os.Getenv("SANITY_CONFIG")

type sanityCase struct {
	class, access string
	size, expand  int64
}

var sanityCases = map[string]sanityCase{
	"thick-mount-ext4": {class: "thick", access: "mount", size: 64 << 20, expand: 128 << 20},
	"thick-block":      {class: "thick", access: "block", size: 64 << 20, expand: 128 << 20},
	"thin-mount-xfs":   {class: "thin", access: "mount", size: 320 << 20, expand: 384 << 20},
	"thin-block":       {class: "thin", access: "block", size: 64 << 20, expand: 128 << 20},
}

// mustRun are the spec families no configuration may skip.
var mustRun = regexp.MustCompile(`(?i)snapshot|clone|from an existing source|ListVolumes|GetCapacity|Expand|VolumeStats`)

// TestSanity runs csi-test's sanity suite against the real driver on real LVM, in the
// configuration named by $SANITY_CONFIG (one per process: Ginkgo runs one suite per process).
func TestSanity(t *testing.T) {
	requireVM(t)
	sc, ok := sanityCases[sanityConfig]
	if !ok {
		t.Fatalf("SANITY_CONFIG=%q: want one of thick-mount-ext4, thick-block, thin-mount-xfs, thin-block", sanityConfig)
	}
	_, sock, _ := startNode(t, classesConfig(t, ""))

	if err := os.MkdirAll("/tmp/sanity-"+sanityConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.TargetPath = "/tmp/sanity-" + sanityConfig + "/target"
	cfg.StagingPath = "/tmp/sanity-" + sanityConfig + "/staging"
	cfg.TestVolumeParameters = map[string]string{"localnvme.io/device-class": sc.class}
	cfg.TestVolumeAccessType = sc.access
	cfg.TestVolumeSize = sc.size
	cfg.TestVolumeExpandSize = sc.expand
	cfg.IdempotentCount = 10
	// csi-test v5.6.0 compares protobuf messages with gomega's Equal (reflect.DeepEqual),
	// which also compares the messages' internal size caches: in "should succeed when
	// creating a snapshot with accessibility requirements" the expected topology was
	// marshaled as part of the request (size cache set) and the returned one was not, so a
	// driver that reports the (correct) snapshot topology can never pass. Sending a clone of
	// every request leaves the test's own message untouched; the comparison of the
	// topologies' contents is unchanged.
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if m, ok := req.(proto.Message); ok {
				req = proto.Clone(m)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	sanity.GinkgoTest(&cfg)

	var skippedMust []string
	ginkgo.ReportAfterSuite("localnvme: required specs ran", func(r ginkgo.Report) {
		for _, s := range r.SpecReports {
			name := s.FullText()
			if s.State == types.SpecStatePending {
				fmt.Printf("pending upstream (XIt in csi-test, not run by anyone): %s\n", name)
			}
			if s.State == types.SpecStateSkipped {
				fmt.Printf("skipped: %s\n", name)
			}
			// Group snapshots are a separate capability this driver does not claim.
			if s.State == types.SpecStateSkipped && !strings.Contains(name, "GroupController") {
				if mustRun.MatchString(name) {
					skippedMust = append(skippedMust, name)
				}
			}
		}
	})
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteCfg, reporterCfg := ginkgo.GinkgoConfiguration()
	reporterCfg.NoColor = true
	passed := ginkgo.RunSpecs(t, "localnvme csi-sanity "+sanityConfig, suiteCfg, reporterCfg)
	if len(skippedMust) > 0 {
		t.Errorf("configuration %s skipped specs that must run:\n  %s", sanityConfig, strings.Join(skippedMust, "\n  "))
	}
	fmt.Printf("@@SANITY config=%s passed=%v\n", sanityConfig, passed)
}
