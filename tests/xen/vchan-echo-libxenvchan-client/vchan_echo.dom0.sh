# dom0 companion of vchan_echo: for each session the guest offers, runs
# Xen's unmodified `vchan-socket-proxy -m client <domid> <path> -` (its
# stdin/stdout mode), feeds it random bytes and checks that the same bytes
# come back; tells the guest the verdict in its data/verdict<i>.
#
# The proxy ends the channel when its stdin ends, dropping any echo still
# in flight, so stdin is held open until the whole echo has arrived.
D=$DOMID_vchan_echo
BYTES=${ECHO_BYTES:-262144}
W=/tmp/vchan_echo
mkdir -p $W
wait_node() {
    local i=0
    while ! xenstore-read "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 600 ] && { echo "no $1 after 60 s"; exit 1; }
        sleep 0.1
    done
}
size() { cat "$1" 2>/dev/null | wc -c; }
wait_node /local/domain/$D/data/sessions
n=$(xenstore-read /local/domain/$D/data/sessions)
failed=0
i=0
while [ $i -lt "$n" ]; do
    path=/local/domain/$D/data/echo$i
    wait_node $path/event-channel
    dd if=/dev/urandom of=$W/in$i bs=4096 count=$((BYTES / 4096)) 2>/dev/null
    rm -f $W/out$i
    (
        cat $W/in$i
        t=0
        while [ "$(size $W/out$i)" -lt "$BYTES" ] && [ $t -lt 600 ]; do
            t=$((t + 1))
            sleep 0.1
        done
    ) | vchan-socket-proxy -m client "$D" "$path" - > $W/out$i
    rc=$?
    got=$(size $W/out$i)
    if [ $rc = 0 ] && cmp -s $W/in$i $W/out$i; then
        verdict="ok: $got bytes came back identical ($(md5sum < $W/out$i | cut -c1-16))"
    else
        verdict="FAIL: proxy exit $rc, $got of $BYTES bytes back, cmp: $(cmp $W/in$i $W/out$i 2>&1)"
        failed=1
    fi
    echo "session $i: $verdict"
    xenstore-write /local/domain/$D/data/verdict$i "$verdict"
    i=$((i + 1))
done

# The persistent server: two clients in a row on one path.
path=/local/domain/$D/data/persist
wait_node $path/event-channel
pverdict=ok
for c in 1 2; do
    dd if=/dev/urandom of=$W/pin$c bs=4096 count=4 2>/dev/null
    rm -f $W/pout$c
    (
        cat $W/pin$c
        t=0
        while [ "$(size $W/pout$c)" -lt 16384 ] && [ $t -lt 600 ]; do
            t=$((t + 1))
            sleep 0.1
        done
    ) | vchan-socket-proxy -m client "$D" "$path" - > $W/pout$c
    rc=$?
    if [ $rc = 0 ] && cmp -s $W/pin$c $W/pout$c; then
        echo "persistent session, client $c: 16384 bytes came back identical"
    else
        echo "persistent session, client $c: FAIL: proxy exit $rc, $(size $W/pout$c) bytes back"
        pverdict=FAIL
        failed=1
    fi
    sleep 0.5
done
xenstore-write /local/domain/$D/data/persist-done "$pverdict: two clients in a row"
exit $failed
