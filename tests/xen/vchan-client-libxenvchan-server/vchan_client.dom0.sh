# dom0 companion of vchan_client: Xen's unmodified `vchan-socket-proxy -m
# server` offers a vchan to the guest (libxenvchan over Linux's gntalloc)
# at a dom0 path. Its data side is file-no 3, a FIFO opened read-write, so
# everything the guest sends is written into the FIFO and read back out:
# an echo. The proxy exits when the guest closes the channel.
G=$DOMID_vchan_client
P=/local/domain/0/data/vchan_client
F=/tmp/vchan_client.fifo
rm -f $F
mkfifo $F
vchan-socket-proxy -m server "$G" "$P" 3 3<>$F &
proxy=$!
xenstore-write /local/domain/$G/data/server "0 $P"
echo "vchan-socket-proxy -m server $G $P started (pid $proxy)"
wait $proxy
rc=$?
echo "vchan-socket-proxy exited with $rc"
exit $rc
