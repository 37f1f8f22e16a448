# Helpers for dom0 companion scripts (examples/<name>.dom0.sh) and
# pre-create scripts (<name>.pre.dom0.sh): xtask puts this text in front of
# every one in the payload, so a script can call them without defining its
# own.

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


# wait_gone DOMID [SECONDS]: waits until domain DOMID has ended and been
# destroyed (the lab destroys a guest once it shut down and its console
# settled; libxl has removed its devices by then, so a disk image can be
# checked), polling every 0.5 s for up to SECONDS (default 120); fails after.
wait_gone() {
    i=0
    limit=$(( ${2:-120} * 2 ))
    while [ $i -lt $limit ]; do
        xenstore-exists "/local/domain/$1" 2>/dev/null || return 0
        sleep 0.5 2>/dev/null || sleep 1
        i=$((i + 1))
    done
    return 1
}
