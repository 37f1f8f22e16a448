# /guest.sh of the Linux reference guest of `cargo xtask bench` (run by
# the lab's Linux guest initramfs, xenpv-run/src/linux_guest/init.sh);
# xtask puts IP, BYTES, RUNS, DISK_BYTES and CHUNKS in front of it.
# 1. Block: for each size of CHUNKS, RUNS times, a sequential write of the
#    whole xvda (DISK_BYTES) then a sequential read, in calls of that size
#    with O_DIRECT (busybox dd
#    oflag=direct / iflag=direct: no page cache), each timed around dd with
#    the monotonic clock (/proc/timer_list).
# 2. Network, the roles of net_bench.rs: busybox nc servers, a sink on
#    5001 (cat > /dev/null) and a source on 5002 (dd of BYTES zeros);
#    dom0 times them (net_client.dom0.sh) and pings. Ends after RUNS
#    connections to each.
now_ns() {
    awk '/^now at/ { print $3; exit }' /proc/timer_list 2>/dev/null \
        || awk '{ printf "%d\n", $1 * 1e9 }' /proc/uptime
}
i=0
while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
for CHUNK in $CHUNKS; do
    count=$((DISK_BYTES / CHUNK))
    for r in $(seq 1 $RUNS); do
        t0=$(now_ns)
        dd if=/dev/zero of=/dev/xvda bs=$CHUNK count=$count oflag=direct 2> /tmp/dd.err || echo "linux_bench: FAIL: dd write: $(cat /tmp/dd.err)"
        t1=$(now_ns)
        echo "linux_bench: block write run $r: $DISK_BYTES bytes in $((t1 - t0)) ns, $CHUNK-byte requests"
        t0=$(now_ns)
        dd if=/dev/xvda of=/dev/null bs=$CHUNK count=$count iflag=direct 2> /tmp/dd.err || echo "linux_bench: FAIL: dd read: $(cat /tmp/dd.err)"
        t1=$(now_ns)
        echo "linux_bench: block read run $r: $DISK_BYTES bytes in $((t1 - t0)) ns, $CHUNK-byte requests"
    done
done

i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip addr add $IP/24 dev eth0 && ip link set eth0 up || echo "linux_bench: FAIL: no eth0"
printf '#!/bin/sh\ncat > /dev/null\necho x >> /tmp/sink.count\n' > /bin/sink
printf '#!/bin/sh\ndd if=/dev/zero bs=65536 count=%d 2>/dev/null\necho x >> /tmp/source.count\n' $((BYTES / 65536)) > /bin/source
chmod 755 /bin/sink /bin/source
nc -ll -p 5001 -e /bin/sink &
nc -ll -p 5002 -e /bin/source &
sleep 0.2
echo "linux_bench: $IP listening: sink on 5001, source on 5002 ($BYTES bytes), $RUNS runs each"
i=0
while [ $i -lt 1200 ]; do
    [ "$(cat /tmp/sink.count 2>/dev/null | wc -l)" -ge $RUNS ] && [ "$(cat /tmp/source.count 2>/dev/null | wc -l)" -ge $RUNS ] && break
    sleep 0.25
    i=$((i + 1))
done
echo "linux_bench: done: $(cat /tmp/sink.count 2>/dev/null | wc -l) sink and $(cat /tmp/source.count 2>/dev/null | wc -l) source connections"
echo "linux_bench: $(grep eth0 /proc/net/dev | tr -s ' ')"
grep '^Tcp:' /proc/net/snmp | sed 's/^/linux_bench: /'
cat /sys/block/xvda/queue/max_sectors_kb /sys/block/xvda/queue/max_segments 2>/dev/null | tr '\n' ' ' | sed 's/^/linux_bench: xvda max_sectors_kb, max_segments: /'; echo
