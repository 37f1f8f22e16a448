# dom0 companion of grant_linux (run by `cargo xtask run grant_linux` with
# the guest still paused and DOMID_grant_linux set; gnt-interop is in
# /payload/bin). It maps the guest's grants through Linux's gntdev, then
# shares dom0 pages with it through gntalloc, relaying references and
# progress through the guest's own /local/domain/<id>/data.
D=$DOMID_grant_linux
P=/local/domain/$D/data
LOG=/tmp/gnt-interop

# wait_line FILE PREFIX PID: waits (up to 60 s, and while PID runs) for a
# line of FILE starting with PREFIX.
wait_line() {
    i=0
    while [ $i -lt 120 ]; do
        grep -q "^$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { grep -q "^$2" "$1" 2>/dev/null; return; }
        sleep 0.5 2>/dev/null || sleep 1
        i=$((i + 1))
    done
    return 1
}

# stop PID LOG: ends a gnt-interop hold, prints its output, returns its status.
stop() {
    kill -TERM "$1" 2>/dev/null
    wait "$1"
    rc=$?
    cat "$2"
    return $rc
}

# 1. gntdev: map the guest's three pages, check, reply, arm the notify byte
# (the last byte of the third page), hold until the guest has seen it all.
refs=$(wait_read $P/grefs) || { echo "no grefs from the guest"; exit 1; }
echo "guest dom$D shares grefs $refs"
gnt-interop map --seed 0x5a --reply "hello xenpv from dom0 gntdev" \
    --notify-clear-byte 12287 --hold 120 "$D" $refs > $LOG.map 2>&1 &
map=$!
wait_line $LOG.map "gnt-interop: ready" $map || { stop $map $LOG.map; echo "gntdev map failed"; exit 1; }
xenstore-write $P/gntdev_mapped ok
wait_read $P/end_refused > /dev/null || { stop $map $LOG.map; echo "no end_refused from the guest"; exit 1; }
stop $map $LOG.map || { echo "gnt-interop map failed"; exit 1; }

# 2. gntalloc: share three pages with the guest, hold them until it has
# read them, then check its reply.
gnt-interop share --seed 0xa5 --expect-reply "xenpv read 3 gntalloc pages" \
    --hold 120 "$D" 3 > $LOG.share 2>&1 &
share=$!
wait_line $LOG.share "grefs: " $share || { stop $share $LOG.share; echo "gntalloc share failed"; exit 1; }
arefs=$(sed -n 's/^grefs: //p' $LOG.share)
xenstore-write $P/alloc_grefs "$arefs"
wait_read $P/alloc_checked > /dev/null || { stop $share $LOG.share; echo "no alloc_checked from the guest"; exit 1; }
if stop $share $LOG.share; then
    xenstore-write $P/alloc_result ok
else
    xenstore-write $P/alloc_result "gnt-interop share failed"
    exit 1
fi
echo "gntdev and gntalloc interop done"
