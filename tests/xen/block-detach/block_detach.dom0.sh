# Companion of block_detach: once the guest reads its disk, detaches it
# with a plain `xl block-detach` (no -f: it completes only if the guest's
# front end closes its side) and checks the backend dir goes.
D=$DOMID_block_detach
[ -n "$D" ] || { echo "FAIL: the guest was not created"; exit 1; }
wait_read /local/domain/$D/data/reading 60 >/dev/null || { echo "FAIL: the guest never started reading"; exit 1; }
sleep 1
start=$(cut -d ' ' -f 1 /proc/uptime)
if xl block-detach "$D" xvda; then
    echo "xl block-detach: ok ($(awk "BEGIN { print $(cut -d ' ' -f 1 /proc/uptime) - $start }") s)"
else
    echo "FAIL: xl block-detach failed"
    xenstore-ls -f /local/domain/0/backend/vbd 2>&1 | head -20
    exit 1
fi
if xenstore-exists /local/domain/0/backend/vbd/$D/51712 2>/dev/null; then
    echo "FAIL: the backend dir is still there"
    exit 1
fi
echo "backend dir gone"
