#!/bin/sh
# /init of the xenpv lab's dom0 initramfs (built by `cargo xtask lab`).
#
# Brings up the Xen toolstack in a bare Linux dom0, then runs the run's
# plan from the payload archive (`/payload/plan`, built by `cargo xtask run`
# and appended to this initramfs), then powers the machine off. Lines that
# start with XENPV- are read by the host; see xtask/src/markers.rs.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
export HOME=/root

fail() {
    echo "XENPV-ERROR dom0 setup: $*"
    poweroff -f
    sleep 3600
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
mkdir -p /dev/pts
# xenconsoled needs ptys ("Failed to create tty" otherwise).
mount -t devpts devpts /dev/pts || fail "mount /dev/pts"
mount -t tmpfs tmpfs /tmp || fail "mount /tmp"
mount -t tmpfs tmpfs /var/run || fail "mount /var/run"
mkdir -p /var/run/xen /var/run/xenstored /var/log/xen/console /var/lib/xen

# In dependency order (xenpv-run's initramfs::MODULES, checked when the
# lab is built): the toolstack's (privcmd before xenfs, which uses it), then
# the split drivers' backends (bridge with llc and stp, loop, xen-netback,
# xen-blkback).
for module in $(cat /lib/modules/order); do
    insmod "/lib/modules/$module.ko" || fail "insmod $module"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"

# The guests' network: the bridge xenbr0 (libxl's default bridge), dom0 at
# 10.0.7.1/24; /etc/xen/scripts/vif-bridge adds each guest's vif<domid>.<n>
# to it. STP off, no forward delay: a port forwards as soon as it is up.
ip link set lo up
brctl addbr xenbr0 || fail "brctl addbr xenbr0"
brctl stp xenbr0 off
brctl setfd xenbr0 0 2>/dev/null
ip addr add 10.0.7.1/24 dev xenbr0 || fail "address of xenbr0"
ip link set xenbr0 up || fail "ip link set xenbr0 up"

xenstored --pid-file /var/run/xenstored.pid || fail "xenstored"
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || { cat /tmp/xen-init-dom0.log; fail "xen-init-dom0"; }
xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    || fail "xenconsoled"

echo "XENPV-DOM0-READY $(cut -d ' ' -f 1 /proc/uptime)"
if [ -f /payload/plan ]; then
    /bin/sh /payload/plan
else
    echo "XENPV-ERROR no /payload/plan in the initramfs: boot it with \`cargo xtask run\`"
fi
echo "XENPV-DONE"
poweroff -f
sleep 3600
