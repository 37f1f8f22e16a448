# Pre-create script of the backends case (runs in dom0 just before
# `xl create`): the 1 MiB raw disk image backends.cfg names, random bytes
# whose md5 the companion checks again once the guest has gone.
IMG=/tmp/backends.img
dd if=/dev/urandom of=$IMG bs=64k count=16 2>/dev/null || { echo "dd failed"; exit 1; }
md5sum < $IMG | cut -d ' ' -f 1 > $IMG.md5
echo "image $IMG: $(wc -c < $IMG) bytes, md5 $(cat $IMG.md5)"
