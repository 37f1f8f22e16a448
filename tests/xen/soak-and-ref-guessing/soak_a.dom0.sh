# dom0 companion of the soak (`cargo xtask run soak_a soak_b hostile_guesser`):
# tells A and B each other's domid, and A and C (the guesser) each other's.
A=$DOMID_soak_a
B=$DOMID_soak_b
C=$DOMID_hostile_guesser
echo "relay: A=$A B=$B C=$C"
xenstore-write /local/domain/$A/data/peer_domid "$B"
xenstore-write /local/domain/$B/data/peer_domid "$A"
xenstore-write /local/domain/$A/data/guesser_domid "$C"
xenstore-write /local/domain/$C/data/peer_domid "$A"

# Relay C's "done" to A (A cannot rely on reading C's data/: it vanishes
# when C powers off), and acknowledge it to C, which waits for that.
wait_read /local/domain/$C/data/done 300 >/dev/null || { echo "relay: no done from C"; exit 1; }
xenstore-write /local/domain/$A/data/c_done 1
xenstore-write /local/domain/$C/data/ack 1
echo "relay: C is done"
