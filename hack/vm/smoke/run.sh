#!/bin/sh
# Smoke payload for the localnvme VM harness (runs inside the VM as
# /payload/run.sh under busybox sh). Proves that the emulated NVMe drives, LVM
# (linear, striped, thin pool, thin LV, thin snapshot, extend), ext4 and xfs
# work. Exits 0 only if every step passed.
set -eu

[ "${LOCALNVME_IN_VM:-}" = 1 ] || { echo "smoke: must run inside the VM (LOCALNVME_IN_VM=1)"; exit 2; }

T0=$(date +%s)
STEP="start"
SUMMARY=/results/smoke-summary.txt
: >"$SUMMARY"

step() {
	STEP=$*
	echo "== [$(($(date +%s) - T0))s] $STEP"
}
ok() { echo "ok   $STEP" | tee -a "$SUMMARY"; }
fail() {
	echo "FAIL $STEP: $*" | tee -a "$SUMMARY"
	exit 1
}
on_exit() {
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "SMOKE FAILED (rc=$rc) at step: $STEP" | tee -a "$SUMMARY"
		dmesg | tail -n 30
	else
		echo "SMOKE PASSED in $(($(date +%s) - T0)) s" | tee -a "$SUMMARY"
	fi
}
trap on_exit EXIT

# dev_by_serial SERIAL -> /dev/nvmeXnY of namespace 1 of that controller.
dev_by_serial() {
	for c in /sys/class/nvme/nvme*; do
		s=$(tr -d ' ' <"$c/serial")
		if [ "$s" = "$1" ]; then
			for n in "$c"/nvme*n1; do
				[ -e "$n" ] && { echo "/dev/${n##*/}"; return 0; }
			done
		fi
	done
	return 1
}

# mnt_write DEV DIR: mount, write 16 MiB, remember its checksum, unmount.
mnt_write() {
	mkdir -p "$2"
	mount "$1" "$2"
	dd if=/dev/urandom of="$2/data" bs=1M count=16 2>/dev/null
	sync
	sha256sum "$2/data" | cut -d' ' -f1 >"/tmp/$(basename "$2").sum"
	umount "$2"
}
# mnt_verify DEV DIR SUMFILE: mount and compare the checksum.
mnt_verify() {
	mkdir -p "$2"
	mount "$1" "$2"
	got=$(sha256sum "$2/data" | cut -d' ' -f1)
	umount "$2"
	[ "$got" = "$(cat "$3")" ] || fail "checksum mismatch on $1"
}

step "list NVMe controllers"
for c in /sys/class/nvme/nvme*; do
	echo "  ${c##*/}: serial='$(tr -d ' ' <"$c/serial")' model='$(sed 's/ *$//' "$c/model")'"
done
cat /etc/localnvme-drives
ok

step "find drives by serial"
THICK0=$(dev_by_serial LNVTHICK0) || fail "LNVTHICK0 not found"
THICK1=$(dev_by_serial LNVTHICK1) || fail "LNVTHICK1 not found"
THIN0=$(dev_by_serial LNVTHIN0) || fail "LNVTHIN0 not found"
echo "  THICK0=$THICK0 THICK1=$THICK1 THIN0=$THIN0"
ok

step "namespace identifiers of LNVTHIN0"
want_eui=$(awk '$1 == "LNVTHIN0" { print $3 }' /etc/localnvme-drives)
want_uuid=$(awk '$1 == "LNVTHIN0" { print $4 }' /etc/localnvme-drives)
b=/sys/block/${THIN0#/dev/}
for a in eui uuid nguid wwid; do
	if [ -e "$b/$a" ]; then echo "  sysfs $a: $(cat "$b/$a")"; else echo "  sysfs $a: (absent)"; fi
done
nvme ns-descs "$THIN0" | tee /tmp/nsdescs
got_eui=$(awk '$1 == "eui64" && $3 != "0000000000000000" { print "0x" $3; exit }' /tmp/nsdescs)
got_uuid=$(awk '$1 == "uuid" { print $3; exit }' /tmp/nsdescs)
[ "$got_eui" = "$want_eui" ] || fail "eui64 from the device '$got_eui' != '$want_eui'"
[ "$got_uuid" = "$want_uuid" ] || fail "uuid from the device '$got_uuid' != '$want_uuid'"
echo "  device reports eui64=$got_eui uuid=$got_uuid (as configured)"
ok

step "pvcreate --metadatasize 64m on the THICK drives + vgcreate"
lvm pvcreate -y --metadatasize 64m "$THICK0" "$THICK1"
lvm vgcreate vgthick "$THICK0" "$THICK1"
lvm pvs -o pv_name,vg_name,pv_size,pv_mda_size,pv_mda_free
ok

step "linear LV + ext4 + write"
lvm lvcreate -y -n lin -L 256m vgthick
mkfs.ext4 -q /dev/vgthick/lin
mnt_write /dev/vgthick/lin /mnt/lin
ok

step "lvextend + online resize2fs"
mkdir -p /mnt/lin && mount /dev/vgthick/lin /mnt/lin
before=$(df -k /mnt/lin | awk 'NR == 2 { print $2 }')
lvm lvextend -L +256m vgthick/lin
resize2fs /dev/vgthick/lin
after=$(df -k /mnt/lin | awk 'NR == 2 { print $2 }')
umount /mnt/lin
echo "  ext4 size: $before KiB -> $after KiB"
[ "$after" -gt "$before" ] || fail "ext4 did not grow"
mnt_verify /dev/vgthick/lin /mnt/lin /tmp/lin.sum
e2fsck -f -n /dev/vgthick/lin
ok

step "striped LV (2 stripes) + xfs + write"
lvm lvcreate -y -n striped -i 2 -I 64k -L 400m vgthick
lvm lvs -o lv_name,segtype,stripes,lv_size vgthick/striped
mkfs.xfs -q /dev/vgthick/striped
mnt_write /dev/vgthick/striped /mnt/striped
ok

step "lvextend + xfs_growfs"
mount /dev/vgthick/striped /mnt/striped
before=$(df -k /mnt/striped | awk 'NR == 2 { print $2 }')
lvm lvextend -L +128m vgthick/striped
xfs_growfs /mnt/striped
after=$(df -k /mnt/striped | awk 'NR == 2 { print $2 }')
umount /mnt/striped
echo "  xfs size: $before KiB -> $after KiB"
[ "$after" -gt "$before" ] || fail "xfs did not grow"
mnt_verify /dev/vgthick/striped /mnt/striped /tmp/striped.sum
xfs_repair -n /dev/vgthick/striped
ok

step "thin pool + thin LV + ext4 on LNVTHIN0"
lvm pvcreate -y --metadatasize 64m "$THIN0"
lvm vgcreate vgthin "$THIN0"
lvm lvcreate -y -T -L 2g vgthin/pool
lvm lvcreate -y -T -V 1g -n thin1 vgthin/pool
mkfs.ext4 -q /dev/vgthin/thin1
mnt_write /dev/vgthin/thin1 /mnt/thin1
ok

step "thin snapshot + activate + verify"
lvm lvcreate -y -s -n snap1 vgthin/thin1
lvm lvchange -ay -K vgthin/snap1
mnt_verify /dev/vgthin/snap1 /mnt/snap1 /tmp/thin1.sum
lvm lvs -a -o lv_name,segtype,origin,pool_lv,data_percent,lv_attr vgthin
ok

step "blkid / lsblk / findmnt"
blkid /dev/vgthick/lin /dev/vgthick/striped /dev/vgthin/thin1
lsblk -o NAME,SIZE,TYPE,FSTYPE,SERIAL
mount /dev/vgthin/thin1 /mnt/thin1
findmnt -n -o SOURCE,FSTYPE /mnt/thin1
umount /mnt/thin1
ok

step "xfs_admin / tune2fs / wipefs"
xfs_admin -l /dev/vgthick/striped
tune2fs -l /dev/vgthin/thin1 | grep -E '^Filesystem (UUID|state)'
wipefs /dev/vgthick/lin
ok

step "teardown"
lvm lvremove -y vgthin/snap1 vgthin/thin1 vgthin/pool vgthick/lin vgthick/striped
lvm vgremove -y vgthin vgthick
lvm pvremove -y "$THICK0" "$THICK1" "$THIN0"
ok
