# dom0 companion of grant_a (run by `cargo xtask run grant_a grant_b grant_c`
# with the guests still paused and DOMID_<name> set for each).
# It tells each guest its peer's domid, relays A's grant references to B
# and C, and C's result back to A: each guest reads and writes only its own
# /local/domain/<id>/data, which the toolstack lets it write.
A=$DOMID_grant_a
B=$DOMID_grant_b
C=$DOMID_grant_c
echo "relay: A=$A B=$B C=$C"
xenstore-write /local/domain/$A/data/peer_domid "$B"
xenstore-write /local/domain/$B/data/peer_domid "$A"
xenstore-write /local/domain/$C/data/peer_domid "$A"

rw=$(wait_read /local/domain/$A/data/rw) || { echo "relay: no rw ref from A"; exit 1; }
ro=$(wait_read /local/domain/$A/data/ro) || { echo "relay: no ro ref from A"; exit 1; }
echo "relay: A's refs rw=$rw ro=$ro"
xenstore-write /local/domain/$B/data/ro "$ro"
xenstore-write /local/domain/$B/data/rw "$rw"
xenstore-write /local/domain/$C/data/rw "$rw"
res=$(wait_read /local/domain/$C/data/result) || { echo "relay: no result from C"; exit 1; }
echo "relay: C says: $res"
xenstore-write /local/domain/$A/data/c_result "$res"
