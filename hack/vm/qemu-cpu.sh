# qemu-cpu.sh — the guest CPU model of every TCG VM (hack/vm and the cluster
# nodes); sourced, not run.
#
# "max" without ERMS and FSRM. With ERMS the guest kernel clears pages with
# `rep stosb` and copies to and from user space with `rep movsb`, and glibc's
# memcpy takes `rep movsb` for large copies; TCG executes those one byte per
# iteration. Measured in one VM (1 vCPU, same host, 2026-12-02), plain "max"
# vs this: 50 fork/exec 3.5–3.8 s vs 1.5–1.7 s, faulting in 256 MiB 2.1–2.6 s
# vs 0.3–0.7 s, 64 MiB to tmpfs 1.1–1.3 s vs 0.5 s; AVX stays (a 512 MiB Go
# memmove takes 1.4 s on both, 3.6–4.3 s on qemu64). LOCALNVME_QEMU_CPU overrides.
# shellcheck shell=bash disable=SC2034 # sourced: QEMU_CPU is for the scripts that source it
QEMU_CPU=${LOCALNVME_QEMU_CPU:-max,erms=off,fsrm=off}
