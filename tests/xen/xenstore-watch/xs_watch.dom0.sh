# dom0 companion of xs_watch: tells the guest its domid as xl sees it,
# then, once the guest watches data/ping, writes that key.
D=$DOMID_xs_watch
xenstore-write /local/domain/$D/data/xl-domid "$D"
i=0
while ! xenstore-read /local/domain/$D/data/watching >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "guest never started watching"; exit 1; }
    sleep 0.1
done
xenstore-write /local/domain/$D/data/ping "hello from dom0"
echo "wrote /local/domain/$D/data/ping"
