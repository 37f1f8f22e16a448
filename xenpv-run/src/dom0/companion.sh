# Helpers for dom0 companion scripts (examples/<name>.dom0.sh): xtask puts
# this text in front of every companion in the payload, so a companion can
# call them without defining its own.

# wait_read PATH [SECONDS]: prints the value of xenstore node PATH once it
# exists, polling every 0.5 s for up to SECONDS (default 60); fails after.
wait_read() {
    i=0
    limit=$(( ${2:-60} * 2 ))
    while [ $i -lt $limit ]; do
        if v=$(xenstore-read "$1" 2>/dev/null); then
            echo "$v"
            return 0
        fi
        sleep 0.5 2>/dev/null || sleep 1
        i=$((i + 1))
    done
    return 1
}

