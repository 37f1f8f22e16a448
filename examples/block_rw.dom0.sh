# Companion of block_rw (dom0, busybox sh): once the guest has gone (its
# disks detached), checks that every sector of the xvda image holds the
# guest's pattern with its own number, and that the read-only xvdb image
# is unchanged.
IMG=/tmp/block_rw.img
wait_gone "$DOMID_block_rw" || { echo "FAIL: block_rw did not end"; exit 1; }
sectors=$(( $(wc -c < $IMG) / 512 ))
lines=$(grep -c '^xenpv block_rw sector #[0-9]\{8\}$' $IMG)
distinct=$(grep '^xenpv block_rw sector #' $IMG | sort -u | wc -l)
last=$(dd if=$IMG bs=512 skip=$((sectors - 1)) count=1 2>/dev/null | head -n 1)
want_last=$(printf 'xenpv block_rw sector #%08d' $((sectors - 1)))
if [ "$lines" = $((sectors * 16)) ] && [ "$distinct" = "$sectors" ] && [ "$last" = "$want_last" ]; then
    echo "image: all $sectors sectors hold their pattern ($lines lines, $distinct distinct)"
else
    echo "FAIL: image: $lines pattern lines (want $((sectors * 16))), $distinct distinct (want $sectors), last sector '$last'"
    exit 1
fi
if [ "$(md5sum < /tmp/block_rw_ro.img | cut -d ' ' -f 1)" = "$(cat /tmp/block_rw_ro.md5)" ]; then
    echo "read-only image unchanged"
else
    echo "FAIL: the read-only image changed"
    exit 1
fi
