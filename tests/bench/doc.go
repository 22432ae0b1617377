// Package bench is the performance harness of issue 10 (`make bench`, hack/bench.sh): the
// driver measured against the bare LVM and filesystem tools doing the same work, in one run,
// alternating, inside the qemu VM of hack/vm. The measuring program is bench_vm_test.go
// (build tag vmbench, compiled with `go test -c` like tests/vm); the files without a tag are
// its host-testable parts: percentiles, the results writer and the exec counter.
// docs/performance.md describes the method.
package bench
