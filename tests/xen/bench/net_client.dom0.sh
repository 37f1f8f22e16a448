# dom0 side of the network benchmark (`cargo xtask bench`), the same for
# the xenpv guest (net_bench.rs) and the Linux reference guest
# (linux_bench.sh); xtask puts NAME, IP, BYTES and RUNS in front of it.
# Once the guest's console says it listens: `ping` (20 echoes, 0.2 s
# apart, after one to fill the ARP cache), then RUNS transfers of BYTES
# into the guest's sink (port 5001: busybox nc sends a file, half-closes
# and waits for the guest's close) and RUNS out of its source (port 5002:
# nc reads until the guest closes). Each transfer is timed around the nc
# process alone, with the kernel's monotonic clock (/proc/timer_list).
LOG=/var/log/xen/console/guest-$NAME.log
now_ns() {
    awk '/^now at/ { print $3; exit }' /proc/timer_list 2>/dev/null \
        || awk '{ printf "%d\n", $1 * 1e9 }' /proc/uptime
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }
i=0
until grep -q "listening" "$LOG" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 720 ] && { echo "FAIL: $NAME never listened"; exit 1; }
    sleep 0.25
done
ping -c 1 -W 5 $IP > /dev/null 2>&1 || { echo "FAIL: no answer to a first ping"; ip -o addr; exit 1; }
if ping -c 20 -i 0.2 -W 2 $IP > /tmp/$NAME.ping 2>&1; then
    echo "ping: $(grep -o 'round-trip.*' /tmp/$NAME.ping)"
    echo "ping times: $(grep -o 'time=[0-9.]*' /tmp/$NAME.ping | cut -d = -f 2 | tr '\n' ' ')"
else
    echo "FAIL: ping"; cat /tmp/$NAME.ping
fi
[ -f /tmp/bench.src ] || dd if=/dev/zero of=/tmp/bench.src bs=65536 count=$((BYTES / 65536)) 2>/dev/null
for r in $(seq 1 $RUNS); do
    tries=0
    while :; do
        t0=$(now_ns)
        nc $IP 5001 < /tmp/bench.src
        rc=$?
        t1=$(now_ns)
        [ $rc = 0 ] && break
        tries=$((tries + 1))
        [ $tries -ge 20 ] && { echo "FAIL: sink run $r: nc exit $rc"; exit 1; }
        sleep 0.25
    done
    echo "sink run $r: $BYTES bytes in $(secs $t0 $t1) s"
done
for r in $(seq 1 $RUNS); do
    tries=0
    while :; do
        t0=$(now_ns)
        got=$(nc $IP 5002 < /dev/null | wc -c)
        t1=$(now_ns)
        [ "$got" = "$BYTES" ] && break
        tries=$((tries + 1))
        [ $tries -ge 20 ] && { echo "FAIL: source run $r: got $got bytes"; exit 1; }
        sleep 0.25
    done
    echo "source run $r: $got bytes in $(secs $t0 $t1) s"
done
