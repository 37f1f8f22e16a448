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
