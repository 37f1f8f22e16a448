# Companion of http_server (dom0, busybox sh): fetches the page twice and
# checks the status and body, checks a 404, then detaches the vif
# (xl network-detach, without a forced removal: it completes only when the
# guest's front end closes its side), attaches it again, fetches the page
# once more through the reconnected front end, and detaches it again.
D=$DOMID_http_server
[ -n "$D" ] || { echo "FAIL: the guest was not created"; exit 1; }
wait_read /local/domain/$D/data/listening 60 >/dev/null || { echo "FAIL: http_server never listened"; exit 1; }
# HTTP/1.0 requests with busybox nc: this dom0's static busybox wget
# segfaults (even on a numeric URL with its port), so the request is
# written by hand and the status line and body checked.
get() { printf 'GET %s HTTP/1.0\r\nHost: 10.0.7.18\r\n\r\n' "$1" | nc -w 20 10.0.7.18 80; }
for i in 1 2; do
    get / > /tmp/http_server.resp
    if head -n 1 /tmp/http_server.resp | grep -q '^HTTP/1.0 200' && grep -q '<h1>Hello from xenpv</h1>' /tmp/http_server.resp; then
        echo "GET $i: $(wc -c < /tmp/http_server.resp) bytes, 200, body ok"
    else
        echo "FAIL: GET $i: $(head -c 300 /tmp/http_server.resp)"; exit 1
    fi
done
if get /missing | head -n 1 | grep -q '^HTTP/1.0 404'; then
    echo "GET /missing: 404"
else
    echo "FAIL: /missing was not a 404"; exit 1
fi
detach() {
    start=$(cut -d ' ' -f 1 /proc/uptime)
    if xl network-detach "$D" "$1"; then
        echo "xl network-detach $1: ok ($(awk "BEGIN { print $(cut -d ' ' -f 1 /proc/uptime) - $start }") s)"
    else
        echo "FAIL: xl network-detach $1 failed"; exit 1
    fi
}
detach 0
# The vif again, same MAC and address: the guest reconnects (link up).
if xl network-attach "$D" bridge=xenbr0 mac=00:16:3e:00:00:12 ip=10.0.7.18; then
    echo "xl network-attach: ok"
else
    echo "FAIL: xl network-attach failed"; exit 1
fi
i=0
until get / > /tmp/http_server.resp 2>/dev/null && grep -q '<h1>Hello from xenpv</h1>' /tmp/http_server.resp; do
    i=$((i + 1))
    [ $i -lt 30 ] || { echo "FAIL: no page after the re-attach"; xenstore-ls -f /local/domain/$D/device 2>&1 | head; exit 1; }
    sleep 1
done
echo "GET after re-attach: 200, body ok"
devid=$(xenstore-list /local/domain/$D/device/vif 2>/dev/null | head -n 1)
detach "$devid"
