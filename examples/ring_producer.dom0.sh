# dom0 companion of the ring pair (`cargo xtask run ring_producer ring_consumer`):
# tells each guest the other's domid, in its own writable data/ directory.
P=$DOMID_ring_producer
C=$DOMID_ring_consumer
echo "relay: producer=$P consumer=$C"
xenstore-write /local/domain/$P/data/peer_domid "$C"
xenstore-write /local/domain/$C/data/peer_domid "$P"
