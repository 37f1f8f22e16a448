# Shell helpers for /payload/plan, run by dom0's busybox sh (the plan
# sources this file; xtask puts it in the payload as /payload/lab.sh).
# On a real Xen host xenpv-run writes the same payload to a folder and runs
# the same plan with /bin/sh (dash on Debian; so POSIX sh, awk and
# coreutils only, no busybox extensions), with two settings:
#   XENPV_STATE    the run's own state folder [default: /tmp/xenpv]
#   XENPV_CONSOLE  where guests' consoles are read: `xenconsoled`, its logs
#                  in LOGDIR (the lab's dom0 starts it with --log=guest),
#                  or `pty`, each guest's console pty copied to
#                  $STATE/NAME/console.log (a host's xenconsoled usually
#                  logs no guests) [default: xenconsoled]
#
# A plan is a list of groups. For each group it calls `guest_prepare` for
# every guest with a pre-create script (<name>.pre.dom0.sh, e.g. making
# its disk image), `guest_create` for every guest (created paused), `companion_start` for every dom0 companion
# script, `group_unpause` (all guests start together) and `group_wait`.
#
# Every guest is created with on_poweroff/on_reboot/on_crash = "preserve"
# (xtask rewrites its cfg), so a guest that shuts down stays in `xl list`
# with its shutdown reason until its console log has settled; only then is
# its reason reported and the domain destroyed.
#
# Output read by the host (xenpv-run/src/markers.rs):
#   [NAME] ...                    a line of guest NAME's console
#   [dom0:NAME] ...               a line of NAME's dom0 companion script
#   [xl:NAME] ...                 xl's messages about NAME
#   XENPV-CREATE NAME UPTIME      just before `xl create`
#   XENPV-STARTED NAME DOMID UPTIME  unpaused: the guest runs from now on
#   XENPV-FIRST-OUTPUT NAME UPTIME   dom0 saw the guest's first console line
#   XENPV-GUEST NAME REASON UPTIME   it ended; REASON is poweroff, reboot,
#                                 suspend, crash, watchdog, soft_reset,
#                                 timeout, create-failed or gone
#   XENPV-COMPANION NAME exit CODE | stopped
# UPTIME is dom0's /proc/uptime in seconds.

LOGDIR=/var/log/xen/console
STATE=${XENPV_STATE:-/tmp/xenpv}
CONSOLE=${XENPV_CONSOLE:-xenconsoled}
POLL=0.25
# A group's polls back off from POLL to POLL_MAX seconds while nothing
# happens, once each of its guests has printed its first line (so the boot
# figures keep POLL's resolution), and come back to POLL when a guest ends.
# Between polls dom0 waits on xenstore's @releaseDomain, which xenstored
# fires when a domain shuts down, crashes or goes, so a guest's end is
# seen at once, not at the next poll; the polls are left to stream the
# consoles and to time guests out.
# Each poll runs a dozen processes in dom0 (`xl list` alone took 0.8 s of
# wall time under TCG with two busy guests, `cat` or `awk` 0.15-0.2 s),
# and they take the CPU from the guests. Measured over 20 s of a ring
# benchmark between two guests (order 12, 64-byte writes): dom0 used 15.0 s
# of CPU polling every 0.25 s, 6.9 s with the polls backing off to 10 s;
# the ring's median went from 55 to 108 MiB/s.
POLL_MAX=10
mkdir -p "$STATE"
GROUP=""
COMPANIONS=""

now() { cut -d ' ' -f 1 /proc/uptime; }

# console_log NAME: sets LOG to the file guest NAME's console lines
# arrive in (a variable, not output: a command substitution costs a fork
# on every poll).
console_log() {
    if [ "$CONSOLE" = pty ]; then
        LOG="$STATE/$1/console.log"
    else
        LOG="$LOGDIR/guest-$1.log"
    fi
}

# console_follow NAME DOMID: with XENPV_CONSOLE=pty, copies the guest's
# console to $STATE/NAME/console.log from the pty xenconsoled gives it
# (its xenstore console/tty, what `xl console` attaches to; xl console
# itself is not used: it execs the xenconsole helper, which the lab's dom0
# does not carry). The pty is opened here, before the guest is unpaused,
# so no line is missed; finish_guest stops the copy.
console_follow() {
    local tty="" i=0
    [ "$CONSOLE" = pty ] || return 0
    while [ $i -lt 30 ]; do
        tty=$(xenstore-read "/local/domain/$2/console/tty" 2> /dev/null) && [ -n "$tty" ] && break
        sleep 0.2
        i=$((i + 1))
    done
    # (`command`: a failed redirection of a plain `exec` ends the shell.)
    if [ -z "$tty" ] || ! { command exec 8<> "$tty"; } 2> /dev/null; then
        echo "[xl:$1] no console: xenstore has no console/tty for domain $2${tty:+, or $tty does not open}"
        return 0
    fi
    # Raw, no echo: lines as the guest wrote them, whatever the pty's
    # settings were (stty fails harmlessly where it is not a tty).
    stty raw -echo <&8 > /dev/null 2>&1
    cat <&8 > "$STATE/$1/console.log" 2> "$STATE/$1/console.err" &
    echo $! > "$STATE/$1/console.pid"
    exec 8<&-
}

# console_stop NAME: stops its console copy and shows what that said.
console_stop() {
    [ -f "$STATE/$1/console.pid" ] || return 0
    kill "$(cat "$STATE/$1/console.pid")" 2> /dev/null
    rm -f "$STATE/$1/console.pid"
    [ -s "$STATE/$1/console.err" ] && sed "s/^/[xl:$1] console: /" "$STATE/$1/console.err"
    return 0
}

# guest_prepare NAME SCRIPT: runs the guest's pre-create script in the
# foreground (60 s at most) before its `xl create`, e.g. to make the disk
# image its cfg names; prints its output as the companion's ([dom0:NAME]).
# If it fails, the guest is not created (reported as create-failed).
guest_prepare() {
    local rc
    mkdir -p "$STATE/$1"
    rm -f "$STATE/$1/prepare-failed"
    GUEST=$1 timeout 60 /bin/sh "$2" > "$STATE/$1/prepare.log" 2>&1
    rc=$?
    sed "s/^/[dom0:$1] /" "$STATE/$1/prepare.log"
    [ "$rc" = 0 ] || echo "$rc" > "$STATE/$1/prepare-failed"
}

# guest_create NAME CFG: creates the domain, paused. Exports DOMID_<NAME>
# (NAME with characters other than letters, digits and _ turned into _).
# xl waits for each vif's and disk's backend and hotplug script (libxl
# gives each step ~10 s); the `timeout` bounds the whole create anyway.
guest_create() {
    local name=$1 domid var
    mkdir -p "$STATE/$name"
    console_log "$name"
    rm -f "$LOG"
    echo 0 > "$STATE/$name/printed"
    if [ -f "$STATE/$name/prepare-failed" ]; then
        echo "[xl:$name] not created: its pre-create script failed (exit $(cat "$STATE/$name/prepare-failed"))"
        echo "XENPV-GUEST $name create-failed $(now)"
        return 0
    fi
    echo "XENPV-CREATE $name $(now)"
    if ! timeout 90 xl create -p -q "$2" > "$STATE/$name/xl.log" 2>&1; then
        sed "s/^/[xl:$name] /" "$STATE/$name/xl.log"
        xl destroy "$name" > /dev/null 2>&1
        echo "XENPV-GUEST $name create-failed $(now)"
        return 0
    fi
    domid=$(xl domid "$name")
    var=$(echo "$name" | tr -c 'A-Za-z0-9_\n' '_')
    export "DOMID_$var=$domid"
    echo "$domid" > "$STATE/$name/domid"
    console_follow "$name" "$domid"
    GROUP="$GROUP $name"
}

# companion_start NAME SCRIPT: runs SCRIPT in the background, in its own
# session (so it can be stopped with all its children), with the DOMID_*
# of every guest of the group in its environment. The guests are still
# paused when it starts.
companion_start() {
    mkdir -p "$STATE/$1"
    rm -f "$STATE/$1/companion.rc"
    setsid /bin/sh -c '/bin/sh "$0"; echo $? > "$1"' "$2" "$STATE/$1/companion.rc" \
        > "$STATE/$1/companion.log" 2>&1 &
    echo $! > "$STATE/$1/companion.pid"
    echo 0 > "$STATE/$1/companion.printed"
    COMPANIONS="$COMPANIONS $1"
}

# group_peers: tells each guest of the group the others' domain ids, in
# its own xenstore at data/peers/<name> (owned by the guest, so it can read
# it), before any of them runs.
group_peers() {
    local name other home
    for name in $GROUP; do
        home="/local/domain/$(cat "$STATE/$name/domid")/data/peers"
        for other in $GROUP; do
            [ "$other" = "$name" ] || xenstore-write "$home/$other" "$(cat "$STATE/$other/domid")"
        done
        xenstore-chmod -r "$home" "n$(cat "$STATE/$name/domid")" 2>/dev/null
    done
}

# group_unpause: lets every guest of the group run.
group_unpause() {
    local name
    for name in $GROUP; do
        xl unpause "$name"
        now > "$STATE/$name/started"
        echo "XENPV-STARTED $name $(cat "$STATE/$name/domid") $(now)"
    done
}

# print_new FILE COUNTER PREFIX [final]: prints FILE's lines not printed
# yet, each after PREFIX. Holds back an unfinished last line unless final.
print_new() {
    local printed total
    [ -s "$1" ] || return 0
    printed=$(cat "$2")
    total=$(wc -l < "$1")
    if [ "$4" = final ] && [ -n "$(tail -c 1 "$1")" ]; then
        total=$((total + 1))
    fi
    [ "$total" -gt "$printed" ] || return 0
    awk -v from="$printed" -v to="$total" -v prefix="$3" \
        'NR > from && NR <= to { sub(/\r$/, ""); print prefix $0 }' "$1"
    echo "$total" > "$2"
}

# stream_guest NAME [final]
stream_guest() {
    local counter="$STATE/$1/printed" before
    before=$(cat "$counter")
    console_log "$1"
    print_new "$LOG" "$counter" "[$1] " "$2"
    if [ "$before" = 0 ] && [ "$(cat "$counter")" != 0 ]; then
        echo "XENPV-FIRST-OUTPUT $1 $(now)"
    fi
}

stream_companions() {
    local c
    for c in $COMPANIONS; do
        print_new "$STATE/$c/companion.log" "$STATE/$c/companion.printed" "[dom0:$c] " "$1"
    done
}

# guest_state NAME: "running", "gone" or the shutdown reason, from the
# `xl list -v` snapshot in $STATE/list (columns: Name ID Mem VCPUs State
# Time(s) UUID Reason-Code ...; the code is Xen's SHUTDOWN_* number).
guest_state() {
    awk -v n="$1" '
        $1 == n { found = 1; state = $5; code = $8 }
        END {
            if (!found) { print "gone"; exit }
            if (state !~ /[sc]/) { print "running"; exit }
            if (state ~ /c/) { print "crash"; exit }
            split("poweroff reboot suspend crash watchdog soft_reset", names, " ")
            if (code ~ /^[0-9]+$/ && (code + 1) in names) print names[code + 1]
            else print "shutdown-" code
        }' "$STATE/list"
}

# settle FILE: waits (3 s at most) until FILE stops growing, so that
# xenconsoled (or the pty copy) has written the guest's last words.
settle() {
    local previous=-1 size i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        size=$(wc -c < "$1" 2>/dev/null || echo 0)
        [ "$size" = "$previous" ] && return 0
        previous=$size
        sleep 0.3
    done
}

# finish_guest NAME REASON: prints its last lines, reports it (with the
# code it gave `xenpv::exit`, which it left in its xenstore `data/`), and
# destroys it.
finish_guest() {
    local code
    console_log "$1"
    settle "$LOG"
    stream_guest "$1" final
    console_stop "$1"
    code=$(xenstore-read "/local/domain/$(cat "$STATE/$1/domid")/data/xenpv-exit-code" 2>/dev/null) \
        && echo "XENPV-EXIT $1 $code"
    echo "XENPV-GUEST $1 $2 $(now)"
    xl destroy "$1" > /dev/null 2>&1
}

# expired NAME LIMIT: whether NAME has run for more than LIMIT seconds.
expired() {
    awk -v a="$(cat "$STATE/$1/started")" -v b="$(now)" -v l="$2" 'BEGIN { exit !(b - a > l) }'
}

# companions_finish LIMIT: waits for the companions to end (LIMIT seconds
# at most after their guests did), stopping any still running then.
companions_finish() {
    local deadline c
    deadline=$(awk -v n="$(now)" -v l="$1" 'BEGIN { print n + l }')
    for c in $COMPANIONS; do
        while [ ! -f "$STATE/$c/companion.rc" ] && awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n < d) }'; do
            stream_companions
            sleep "$POLL"
        done
        if [ -f "$STATE/$c/companion.rc" ]; then
            stream_companions final
            echo "XENPV-COMPANION $c exit $(cat "$STATE/$c/companion.rc")"
        else
            kill -TERM -"$(cat "$STATE/$c/companion.pid")" 2>/dev/null
            sleep 0.25
            stream_companions final
            echo "XENPV-COMPANION $c stopped"
        fi
    done
    COMPANIONS=""
}

# nap SECONDS: waits that long, or until xenstored fires @releaseDomain (a
# domain shut down, crashed or went; a watch also fires once when it is
# set, hence the second event). If the watch cannot be set, it sleeps.
nap() {
    timeout "$1" xenstore-watch -n 2 @releaseDomain > /dev/null 2>&1
    case $? in
        0 | 143) ;;
        *) sleep "$1" ;;
    esac
    return 0
}

# group_wait LIMIT: streams the group's consoles until every guest has shut
# down (or run LIMIT seconds), reporting each one as it ends; then waits
# for the group's companions.
group_wait() {
    local pending="$GROUP" still name state wait="$POLL" quiet
    while [ -n "$pending" ]; do
        xl list -v > "$STATE/list" 2>&1
        still=""
        quiet=1
        for name in $pending; do
            stream_guest "$name"
            state=$(guest_state "$name")
            if [ "$state" != running ]; then
                finish_guest "$name" "$state"
                quiet=0
            elif expired "$name" "$1"; then
                finish_guest "$name" timeout
                quiet=0
            else
                still="$still $name"
                [ "$(cat "$STATE/$name/printed")" != 0 ] || quiet=0
            fi
        done
        pending=$still
        stream_companions
        if [ "$quiet" = 0 ]; then
            wait=$POLL
        elif [ "$wait" = "$POLL" ]; then
            wait=0.5
        else
            wait=$POLL_MAX
        fi
        [ -z "$pending" ] || nap "$wait"
    done
    companions_finish "$1"
    GROUP=""
}
