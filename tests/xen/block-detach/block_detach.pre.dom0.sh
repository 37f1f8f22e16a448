# Before `xl create` of block_detach: its 1 MiB image.
dd if=/dev/zero of=/tmp/block_detach.img bs=64k count=16 2>/dev/null || { echo "dd failed"; exit 1; }
