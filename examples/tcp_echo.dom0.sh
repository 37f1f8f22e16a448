# Companion of tcp_echo (dom0, busybox sh): pings the guest, then sends it
# 256 KiB of random bytes over TCP (busybox nc) and checks the echo is
# the same bytes (md5).
D=$DOMID_tcp_echo
[ -n "$D" ] || { echo "FAIL: the guest was not created"; exit 1; }
wait_read /local/domain/$D/data/listening 60 >/dev/null || { echo "FAIL: tcp_echo never listened"; exit 1; }
IP=10.0.7.17
if ping -c 3 -W 2 $IP > /tmp/tcp_echo.ping 2>&1; then
    echo "ping: $(grep -o 'round-trip.*' /tmp/tcp_echo.ping)"
else
    echo "FAIL: no ping answer"; cat /tmp/tcp_echo.ping; ip -o addr; exit 1
fi
dd if=/dev/urandom of=/tmp/tcp_echo.in bs=1024 count=256 2>/dev/null
start=$(cut -d ' ' -f 1 /proc/uptime)
nc -w 30 $IP 7 < /tmp/tcp_echo.in > /tmp/tcp_echo.out
end=$(cut -d ' ' -f 1 /proc/uptime)
in=$(md5sum < /tmp/tcp_echo.in | cut -d ' ' -f 1)
out=$(md5sum < /tmp/tcp_echo.out | cut -d ' ' -f 1)
if [ "$in" = "$out" ]; then
    echo "echo: 262144 bytes came back identical ($(awk "BEGIN { print $end - $start }") s)"
else
    echo "FAIL: echo differs: sent md5 $in, got $(wc -c < /tmp/tcp_echo.out) bytes md5 $out"; exit 1
fi
