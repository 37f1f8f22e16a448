# Companion of http_server (dom0, busybox sh): fetches the page twice and
# checks the status and body, checks a 404, then detaches the vif
# (xl network-detach, without a forced removal: it completes only when the
# guest's front end closes its side).
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
start=$(cut -d ' ' -f 1 /proc/uptime)
if xl network-detach "$D" 0; then
    echo "xl network-detach: ok ($(awk "BEGIN { print $(cut -d ' ' -f 1 /proc/uptime) - $start }") s)"
else
    echo "FAIL: xl network-detach failed"; exit 1
fi
