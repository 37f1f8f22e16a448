# dom0 companion of `cargo xtask run hostile_victim hostile_scribbler`:
# tells each guest the other's domid.
V=$DOMID_hostile_victim
S=$DOMID_hostile_scribbler
echo "relay: victim=$V scribbler=$S"
xenstore-write /local/domain/$V/data/peer_domid "$S"
xenstore-write /local/domain/$S/data/peer_domid "$V"
