#!/bin/sh
# /init of the localnvme VM harness (busybox sh). Built into the base
# initramfs by ensure.sh; the per-run payload cpio adds /payload and
# /etc/localnvme-drives.
#
# Runs /payload/run.sh with LOCALNVME_IN_VM=1 in /payload, tees its output to
# the console and /results/output.log, prints "@@START" / "@@DONE rc=N",
# writes a tar of /results to the virtio disk with serial RESULTS and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

msg() { echo "[vm-init] $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock/lvm /run/lvm /var/lock
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
hostname "$(cat /etc/hostname)" 2>/dev/null || true
# Best effort: also mount a cgroup2 hierarchy (cheap, some tests look at it).
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true

while read -r mod; do
	[ -n "$mod" ] || continue
	out=$(insmod "$mod" 2>&1) || case $out in
		*"File exists"*) ;;
		*) msg "insmod $mod: $out" ;;
	esac
done </etc/localnvme-modules

# Wait (up to 60 s) until every NVMe drive has its namespace block device and
# the RESULTS disk exists: probing is asynchronous.
want=0
[ -f /etc/localnvme-drives ] && want=$(grep -c . /etc/localnvme-drives)
results_dev=""
i=0
while [ $i -lt 600 ]; do
	have=0
	for b in /sys/block/nvme*n*; do
		[ -e "$b" ] && have=$((have + 1))
	done
	results_dev=""
	for v in /sys/block/vd*; do
		[ -e "$v/serial" ] || continue
		if [ "$(cat "$v/serial")" = RESULTS ]; then results_dev=/dev/${v##*/}; fi
	done
	if [ "$have" -ge "$want" ] && [ -n "$results_dev" ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
msg "nvme namespaces: $have of $want; results disk: ${results_dev:-MISSING} (after $((i / 10)) s)"

mkdir -p /results
rc=0
if [ ! -f /payload/run.sh ]; then
	msg "ERROR: /payload/run.sh does not exist"
	echo "ERROR: /payload/run.sh does not exist" >/results/output.log
	echo "@@START"
	rc=127
else
	echo "@@START"
	rm -f /tmp/.payload-rc
	(
		cd /payload || exit 126
		LOCALNVME_IN_VM=1 sh /payload/run.sh </dev/null 2>&1
		echo $? >/tmp/.payload-rc
	) | tee /results/output.log
	rc=$(cat /tmp/.payload-rc 2>/dev/null || echo 125)
fi
echo "$rc" >/results/rc
echo "@@DONE rc=$rc"

sync
if [ -n "$results_dev" ]; then
	if tar -cf "$results_dev" -C /results .; then
		sync
		msg "results written to $results_dev"
	else
		msg "ERROR: writing results to $results_dev failed"
	fi
else
	msg "ERROR: no RESULTS disk found; results lost"
fi
sync
poweroff -f
