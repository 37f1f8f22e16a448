# dom0 companion of the peer-death pair (`cargo xtask run vchan_victim
# vchan_survivor`): tells each guest the other's domid, waits until the
# survivor has received part of the victim's stream, then destroys the
# victim with `xl destroy` while it is still writing.
V=$DOMID_vchan_victim
S=$DOMID_vchan_survivor
echo "relay: victim=$V survivor=$S"
xenstore-write /local/domain/$V/data/peer_domid "$S"
xenstore-write /local/domain/$S/data/peer_domid "$V"
i=0
while ! xenstore-read /local/domain/$S/data/streaming >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 900 ] && { echo "the survivor never reported the stream"; exit 1; }
    sleep 0.1
done
xl destroy "$V" && echo "destroyed the victim (dom$V) mid-stream"
