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

# privcmd before xenfs: xenfs uses it.
for module in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
    insmod "/lib/modules/$module.ko" || fail "insmod $module"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"

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
