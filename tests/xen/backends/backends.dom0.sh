# Companion of the backends case: checks that dom0's xen-netback and
# xen-blkback took the guest's vif and disk (backend state 2 = InitWait:
# probed, waiting for a front-end), that the hotplug scripts ran
# (hotplug-status connected, the vif in xenbr0, the image on a loop
# device), then detaches both devices with xl and checks their backend
# dirs go. Tells the guest the verdict in its data/verdict; once the guest
# has gone, checks the image is intact and its loop device released.
D=$DOMID_backends
if [ -z "$D" ]; then
    # xl create failed (its messages are the [xl:backends] lines).
    echo "FAIL: the guest was not created"
    tail -20 /var/log/xen/hotplug.log 2>/dev/null
    dmesg | tail -10
    exit 1
fi
VIF=backend/vif/$D/0
VBD=backend/vbd/$D/51712
B=/local/domain/0
failed=""
fail() { echo "FAIL: $*"; failed="$failed $1"; }

# wait_value PATH VALUE SECONDS: whether xenstore PATH reads VALUE in time.
wait_value() {
    local i=0
    while [ $i -lt $(($3 * 10)) ]; do
        [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# wait_absent PATH SECONDS
wait_absent() {
    local i=0
    while [ $i -lt $(($2 * 10)) ]; do
        xenstore-exists "$1" 2>/dev/null || return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
diagnose() {
    echo "--- xenstore $B/backend:"
    xenstore-ls -f $B/backend 2>&1 | head -60
    echo "--- /local/domain/$D/device:"
    xenstore-ls -f /local/domain/$D/device 2>&1 | head -40
    echo "--- hotplug log:"
    tail -20 /var/log/xen/hotplug.log 2>&1
    echo "--- ports of xenbr0 (busybox brctl has no show), ip link:"
    ls /sys/class/net/xenbr0/brif 2>&1
    ip -o link 2>&1
    echo "--- dmesg | tail:"
    dmesg | tail -20
}

# 1. The backends (xl create has waited for them; allow a little slack).
for dev in $VIF $VBD; do
    if wait_value $B/$dev/state 2 10; then
        echo "$dev: state 2 (InitWait)"
    else
        fail "$dev state is '$(xenstore-read $B/$dev/state 2>&1)', not 2 (InitWait)"
    fi
    if wait_value $B/$dev/hotplug-status connected 10; then
        echo "$dev: hotplug-status connected"
    else
        fail "$dev hotplug-status is '$(xenstore-read $B/$dev/hotplug-status 2>&1)', not connected"
    fi
done
if [ -e /sys/class/net/xenbr0/brif/vif$D.0 ]; then
    echo "vif$D.0 is a port of xenbr0 ($(cat /sys/class/net/vif$D.0/operstate))"
else
    fail "vif$D.0 is not in xenbr0"
fi
dev=$(xenstore-read $B/$VBD/node 2>/dev/null)
echo "$VBD: params $(xenstore-read $B/$VBD/params 2>/dev/null), physical-device $(xenstore-read $B/$VBD/physical-device 2>/dev/null) = $dev"
case "$(losetup -a 2>/dev/null | grep -F /tmp/backends.img)" in
"$dev:"*) echo "$dev holds /tmp/backends.img" ;;
*) fail "no loop device holds /tmp/backends.img ($(losetup -a 2>&1))" ;;
esac
[ -n "$failed" ] && diagnose
checks=${failed:-ok}

# 2. Detach both under the running guest. It has no front-ends, so libxl
# waits out its 10 s timeout for them: network-detach then removes the vif
# anyway, while a plain block-detach gives up ("unable to remove device",
# backend left in state 5); `-f` removes the disk without waiting for the
# front-end. (With a front-end that closes on request, plain works.)
failed=""
t0=$(cut -d ' ' -f 1 /proc/uptime)
if timeout 60 xl network-detach $D 0 > /tmp/backends.detach 2>&1; then
    echo "xl network-detach: ok ($(awk -v a=$t0 -v b="$(cut -d ' ' -f 1 /proc/uptime)" 'BEGIN { printf "%.1f s", b - a }'))"
else
    fail "xl network-detach failed: $(cat /tmp/backends.detach)"
fi
wait_absent $B/$VIF 10 && echo "$VIF: gone" || fail "$VIF still there (state $(xenstore-read $B/$VIF/state 2>&1))"
[ -e /sys/class/net/vif$D.0 ] && fail "interface vif$D.0 still there" || echo "vif$D.0: gone"
t0=$(cut -d ' ' -f 1 /proc/uptime)
if timeout 60 xl block-detach -f $D xvda > /tmp/backends.detach 2>&1; then
    echo "xl block-detach -f: ok ($(awk -v a=$t0 -v b="$(cut -d ' ' -f 1 /proc/uptime)" 'BEGIN { printf "%.1f s", b - a }'))"
else
    fail "xl block-detach failed: $(cat /tmp/backends.detach)"
fi
wait_absent $B/$VBD 10 && echo "$VBD: gone" || fail "$VBD still there (state $(xenstore-read $B/$VBD/state 2>&1))"
losetup -a 2>/dev/null | grep -qF /tmp/backends.img && fail "the image is still on a loop device after block-detach" \
    || echo "loop device released"
[ -n "$failed" ] && diagnose
detach=${failed:-ok}

if [ "$checks" = ok ] && [ "$detach" = ok ]; then
    verdict="PASS: vif and vbd backends in InitWait, hotplug connected, vif in xenbr0; both detached"
else
    verdict="FAIL: checks:$checks detach:$detach"
fi
echo "$verdict"
xenstore-write /local/domain/$D/data/verdict "$verdict"

# 3. After the guest: the image is intact.
if wait_gone $D 90; then
    if [ "$(md5sum < /tmp/backends.img | cut -d ' ' -f 1)" = "$(cat /tmp/backends.img.md5)" ]; then
        echo "after the guest: image intact ($(wc -c < /tmp/backends.img) bytes, same md5)"
    else
        echo "after the guest: FAIL: the image changed"
    fi
else
    echo "FAIL: the guest did not go"
fi
