#!/bin/sh
# /init of the lab's Linux PV guest initramfs (`linux-guest.cpio`, built by
# `cargo xtask lab` from the same Debian packages as dom0): the dom0 kernel
# booted as a domU (xl `ramdisk=`) with busybox and the split drivers'
# front ends (xen-netfront, xen-blkfront). It runs `/guest.sh`, which a
# second cpio archive appended to this one provides (e.g. `cargo xtask
# bench`'s Linux reference guest), then powers the domain off.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

# In dependency order (xenpv-run's initramfs::GUEST_MODULES, checked when
# the lab is built).
for module in $(cat /lib/modules/order); do
    insmod "/lib/modules/$module.ko" || echo "linux-guest: insmod $module failed"
done
ip link set lo up

if [ -f /guest.sh ]; then
    /bin/sh /guest.sh
    echo "linux-guest: /guest.sh exited with $?"
else
    echo "linux-guest: no /guest.sh in the initramfs"
fi
poweroff -f
sleep 3600
