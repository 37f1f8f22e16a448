# Before `xl create` of block_rw (dom0, busybox sh): a zeroed 4 MiB image
# for xvda and a 64 KiB random one for xvdb (read-only), whose md5 the
# companion checks again after the guest.
dd if=/dev/zero of=/tmp/block_rw.img bs=64k count=64 2>/dev/null || { echo "dd failed"; exit 1; }
dd if=/dev/urandom of=/tmp/block_rw_ro.img bs=64k count=1 2>/dev/null || { echo "dd failed"; exit 1; }
md5sum < /tmp/block_rw_ro.img | cut -d ' ' -f 1 > /tmp/block_rw_ro.md5
echo "images: xvda $(wc -c < /tmp/block_rw.img) bytes, xvdb $(wc -c < /tmp/block_rw_ro.img) bytes"
