#!/bin/sh
# /etc/xen/scripts/vif-bridge of the xenpv lab's dom0 (busybox sh): libxl
# runs it for each guest vif, with `online` (or `add`) once xen-netback has
# made the backend interface vif<domid>.<devid>, and `offline` (or `remove`)
# when the vif goes.
#
# Debian's own script (xen-utils-common) is bash and sources helpers that
# need tools this dom0 does not have (bash, iptables, flock, ...); this one
# does what the lab needs and nothing else: put the interface in the bridge
# named in the backend's xenstore dir (default xenbr0) and bring it up, then
# write hotplug-status = connected, which netback waits for before it
# connects. Failures write hotplug-error (xl prints it) and exit non-zero.
# Every call is logged to /var/log/xen/hotplug.log.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
LOG=/var/log/xen/hotplug.log
action=$1
# XENBUS_PATH is backend/vif/<domid>/<devid> (relative to dom0's home).
[ -n "$XENBUS_PATH" ] || { echo "vif-bridge: no XENBUS_PATH" >&2; exit 1; }
if [ -z "$vif" ]; then
    devid=${XENBUS_PATH##*/}
    domid=${XENBUS_PATH%/*}
    domid=${domid##*/}
    vif=vif$domid.$devid
fi
echo "$(date +%T) vif-bridge $action $vif ($XENBUS_PATH)" >> $LOG

fatal() {
    echo "$(date +%T) vif-bridge $action $vif: $*" >> $LOG
    xenstore-write "$XENBUS_PATH/hotplug-error" "vif-bridge $action $vif: $*" \
        "$XENBUS_PATH/hotplug-status" error 2>/dev/null
    echo "vif-bridge $action $vif: $*" >&2
    exit 1
}

case $action in
online | add)
    bridge=$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null)
    [ -n "$bridge" ] || bridge=xenbr0
    [ -d "/sys/class/net/$bridge/bridge" ] || fatal "no bridge $bridge in dom0"
    # netback creates the interface before the backend reaches InitWait,
    # which libxl waits for before running this script; allow it a moment.
    i=0
    while [ ! -e "/sys/class/net/$vif" ]; do
        i=$((i + 1))
        [ $i -gt 20 ] && fatal "no interface $vif in dom0"
        sleep 0.1
    done
    mtu=$(cat "/sys/class/net/$bridge/mtu" 2>/dev/null)
    [ -n "$mtu" ] && ip link set dev "$vif" mtu "$mtu" 2>>$LOG
    brctl addif "$bridge" "$vif" 2>>$LOG || fatal "brctl addif $bridge $vif failed"
    ip link set dev "$vif" up 2>>$LOG || fatal "ip link set $vif up failed"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected || fatal "xenstore-write failed"
    ;;
offline | remove)
    # The interface may be gone already (netback removed it): not an error.
    bridge=$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null)
    [ -n "$bridge" ] || bridge=xenbr0
    if [ -e "/sys/class/net/$vif" ]; then
        brctl delif "$bridge" "$vif" 2>>$LOG
        ip link set dev "$vif" down 2>>$LOG
    fi
    xenstore-rm "$XENBUS_PATH/hotplug-status" 2>/dev/null
    ;;
*)
    fatal "unknown action"
    ;;
esac
exit 0
