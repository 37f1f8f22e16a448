# dom0 companion of ev_ping/ev_pong (`cargo xtask run ev_ping ev_pong`):
# tells each guest its peer's domid; the guests do the rest.
A=$DOMID_ev_ping
B=$DOMID_ev_pong
xenstore-write /local/domain/$A/data/peer "$B" /local/domain/$B/data/peer "$A"
echo "peers: ev_ping=$A ev_pong=$B"
