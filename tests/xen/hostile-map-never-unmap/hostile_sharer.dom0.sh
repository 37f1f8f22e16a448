# dom0 companion of `cargo xtask run hostile_sharer hostile_hoarder`:
# tells each guest the other's domid.
S=$DOMID_hostile_sharer
H=$DOMID_hostile_hoarder
echo "relay: sharer=$S hoarder=$H"
xenstore-write /local/domain/$S/data/peer_domid "$H"
xenstore-write /local/domain/$H/data/peer_domid "$S"
