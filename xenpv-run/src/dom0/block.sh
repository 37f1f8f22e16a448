#!/bin/sh
# /etc/xen/scripts/block of the xenpv lab's dom0 (busybox sh): libxl runs it
# with `add` for each guest disk served by xen-blkback (a `phy` backend:
# libxl picks it for a block device and for a raw image file), and with
# `remove` once the disk has gone.
#
# Debian's own script (xen-utils-common) is bash with helpers needing tools
# this dom0 does not have; this one does what blkback needs: for an image
# file, attach it to a free loop device (read-only when the disk's mode is
# `r`); write the device's major:minor in hex to `physical-device` (blkback
# opens the device then), its path to `physical-device-path` and `node`,
# and `hotplug-status` = connected. `remove` detaches the loop device.
# Failures write hotplug-error (xl prints it) and exit non-zero. Every call
# is logged to /var/log/xen/hotplug.log.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
LOG=/var/log/xen/hotplug.log
STATE=/var/run/xen/block
action=$1
[ -n "$XENBUS_PATH" ] || { echo "block: no XENBUS_PATH" >&2; exit 1; }
# backend/vbd/<domid>/<devid> -> <domid>-<devid>
key=$(echo "${XENBUS_PATH#backend/}" | cut -d / -f 2- | tr / -)
echo "$(date +%T) block $action $XENBUS_PATH" >> $LOG
mkdir -p $STATE

fatal() {
    echo "$(date +%T) block $action $XENBUS_PATH: $*" >> $LOG
    xenstore-write "$XENBUS_PATH/hotplug-error" "block $action: $*" \
        "$XENBUS_PATH/hotplug-status" error 2>/dev/null
    echo "block $action $XENBUS_PATH: $*" >&2
    exit 1
}

# One loop device at a time: `losetup -f` then attach is not atomic.
lock() {
    i=0
    while ! mkdir $STATE/lock 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && fatal "could not take $STATE/lock"
        sleep 0.1
    done
}
unlock() { rmdir $STATE/lock 2>/dev/null; }

case $action in
add)
    params=$(xenstore-read "$XENBUS_PATH/params") || fatal "no params"
    mode=$(xenstore-read "$XENBUS_PATH/mode" 2>/dev/null)
    if [ -b "$params" ]; then
        dev=$params
    elif [ -f "$params" ]; then
        ro=""
        [ "$mode" = r ] && ro=-r
        lock
        dev=$(losetup -f 2>>$LOG) || { unlock; fatal "no free loop device"; }
        losetup $ro "$dev" "$params" 2>>$LOG || { unlock; fatal "losetup $ro $dev $params failed"; }
        unlock
        echo "$dev" > $STATE/$key
    else
        fatal "$params is neither a block device nor a file"
    fi
    mm=$(stat -L -c '%t:%T' "$dev") || fatal "stat $dev failed"
    xenstore-write "$XENBUS_PATH/node" "$dev" \
        "$XENBUS_PATH/physical-device-path" "$dev" \
        "$XENBUS_PATH/physical-device" "$mm" \
        "$XENBUS_PATH/hotplug-status" connected || fatal "xenstore-write failed"
    echo "$(date +%T) block add: $params on $dev ($mm)" >> $LOG
    ;;
remove)
    # Only a loop device this script attached is detached.
    dev=$(cat $STATE/$key 2>/dev/null)
    case $dev in
    /dev/loop*)
        # blkback may still hold it for a moment after the device went.
        i=0
        while ! losetup -d "$dev" 2>>$LOG; do
            i=$((i + 1))
            [ $i -gt 20 ] && fatal "losetup -d $dev failed"
            sleep 0.25
        done
        echo "$(date +%T) block remove: detached $dev" >> $LOG
        ;;
    esac
    rm -f $STATE/$key
    xenstore-rm "$XENBUS_PATH/hotplug-status" 2>/dev/null
    ;;
*)
    fatal "unknown action"
    ;;
esac
exit 0
