#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for testing the workflow's
# SLURM profile (no systemd, no accounting database).
#
#   scripts/slurm-cluster.sh start    install packages if missing, start munged, slurmctld, slurmd
#   scripts/slurm-cluster.sh stop     stop exactly the daemons that `start` started
#   scripts/slurm-cluster.sh status   print sinfo
#
# Everything (config, munge key, state, spool, logs, pid files) lives in the state folder
# $SB_SLURM_STATE (default /tmp/saliency-bench-slurm). Clients find the cluster through
# SLURM_CONF: `start` prints `export SLURM_CONF=...` on stdout (use `eval "$(... start)"`)
# and writes the same line to $SB_SLURM_STATE/env. Messages go to stderr.
#
# Exit codes: 0 ok, 1 status: cluster not running, 2 usage, 3 not root,
# 4 packages could not be installed, 5 a daemon did not come up in time.
set -euo pipefail

STATE=${SB_SLURM_STATE:-/tmp/saliency-bench-slurm}
START_TIMEOUT=${SB_SLURM_START_TIMEOUT:-60}   # seconds to wait for the node to become idle
STOP_TIMEOUT=${SB_SLURM_STOP_TIMEOUT:-30}     # seconds to wait for the daemons to exit
PACKAGES=(slurmctld slurmd slurm-client munge)
CONF="$STATE/slurm.conf"
PIDS="$STATE/pids"
DAEMONS=(munged slurmctld slurmd)             # start order; stop goes in reverse

say() { echo "slurm-cluster: $*" >&2; }
die() { local code=$1; shift; say "error: $*"; exit "$code"; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die 3 "must run as root (it installs packages and starts daemons); rerun with sudo"
}

ensure_packages() {
    local missing=0 tool
    for tool in munged slurmctld slurmd sinfo sbatch squeue; do
        command -v "$tool" >/dev/null || missing=1
    done
    ((missing)) || return 0
    command -v apt-get >/dev/null || die 4 "SLURM is not installed and apt-get is missing; install ${PACKAGES[*]} by hand"
    say "installing ${PACKAGES[*]} with apt-get"
    local started=$SECONDS
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } >"$STATE/apt.log" 2>&1; then
        tail -n 5 "$STATE/apt.log" >&2
        die 4 "apt-get could not install ${PACKAGES[*]} (log: $STATE/apt.log); install them by hand"
    fi
    say "packages installed in $((SECONDS - started)) s"
}

# Is the daemon `name` with process id `pid` alive? Checks the command name too, so a
# recycled pid of some other process never counts (and is never killed).
alive() {
    local name=$1 pid=$2
    [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}

# Print "name pid" for every recorded daemon that is still alive.
live_daemons() {
    [[ -f $PIDS ]] || return 0
    local name pid
    while read -r name pid; do
        if [[ -n ${pid:-} ]] && alive "$name" "$pid"; then echo "$name $pid"; fi
    done <"$PIDS"
}

write_munge_key() {
    mkdir -p "$STATE/munge"
    if [[ ! -s $STATE/munge/munge.key ]]; then
        dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
        say "created munge key $STATE/munge/munge.key"
    fi
    # munged insists on a key only the munge user can read; the folder stays
    # world-readable (like /run/munge) so that every user can reach the socket.
    chown -R munge:munge "$STATE/munge"
    chmod 755 "$STATE/munge"
    chmod 400 "$STATE/munge/munge.key"
}

write_config() {
    mkdir -p "$STATE/spool/slurmctld" "$STATE/spool/slurmd" "$STATE/log" "$STATE/run"
    local node memory cpus defmem
    # e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    node=$(slurmd -C | head -n 1)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    # Declare 90% of the memory, so the node is never drained for "low RealMemory";
    # a job without --mem gets DefMemPerCPU instead of the whole node.
    memory=$((memory * 9 / 10))
    defmem=$((memory / cpus / 2))
    node=$(sed "s/RealMemory=[0-9]*/RealMemory=$memory/" <<<"$node")
    cat >"$CONF" <<EOF
# Written by scripts/slurm-cluster.sh; rewritten on every start.
ClusterName=saliencybench
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# squeue forgets a finished job after MinJobAge seconds; the Snakemake plugin's squeue
# status check needs MinJobAge >= 3 x its --slurm-init-seconds-before-status-checks.
MinJobAge=600
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$CONF" >"$STATE/env"
}

# Snakemake's SLURM jobstep drops every SLURM_* variable, SLURM_CONF included, before its
# nested srun, which then only finds a config at the default path. Link ours there, unless
# another config is there already; `stop` removes only a link that `start` made.
DEFAULT_CONF=/etc/slurm/slurm.conf
link_default_config() {
    if [[ -L $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == "$CONF" ]]; then return 0; fi
    if [[ -e $DEFAULT_CONF || -L $DEFAULT_CONF ]]; then
        say "warning: $DEFAULT_CONF exists and is not ours; srun inside jobs will read it, not $CONF"
        return 0
    fi
    mkdir -p "$(dirname "$DEFAULT_CONF")"
    ln -s "$CONF" "$DEFAULT_CONF"
    echo "$DEFAULT_CONF" >"$STATE/linked-config"
}

unlink_default_config() {
    [[ -f $STATE/linked-config ]] || return 0
    if [[ -L $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == "$CONF" ]]; then rm -f "$DEFAULT_CONF"; fi
    rm -f "$STATE/linked-config"
}

# Wait until `file` holds the pid of a live `name` process; print the pid.
wait_for_pid() {
    local name=$1 file=$2 deadline=$((SECONDS + 20)) pid
    while ((SECONDS < deadline)); do
        pid=$(cat "$file" 2>/dev/null || true)
        if [[ -n $pid ]] && alive "$name" "$pid"; then echo "$pid"; return 0; fi
        sleep 0.2
    done
    return 1
}

start_daemon() {
    local name=$1 pidfile=$2 log=$3; shift 3
    rm -f "$pidfile"
    "$@" || { tail -n 20 "$log" >&2 2>/dev/null || true; die 5 "$name did not start (log: $log)"; }
    local pid
    pid=$(wait_for_pid "$name" "$pidfile") || { tail -n 20 "$log" >&2 2>/dev/null || true; die 5 "$name exited right after start (log: $log)"; }
    echo "$name $pid" >>"$PIDS"
    say "started $name (pid $pid)"
}

wait_until_idle() {
    local deadline=$((SECONDS + START_TIMEOUT)) state=""
    while ((SECONDS < deadline)); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
        case $state in
            idle|mix|alloc) return 0 ;;
        esac
        sleep 0.5
    done
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 2>/dev/null || true
    die 5 "the node did not become idle within ${START_TIMEOUT} s (last state: '${state:-none}'); see the logs in $STATE/log"
}

start() {
    require_root
    mkdir -p "$STATE"
    local running
    running=$(live_daemons | wc -l)
    if ((running == ${#DAEMONS[@]})); then
        say "already running (pids: $(live_daemons | awk '{print $2}' | xargs))"
        cat "$STATE/env"
        return 0
    fi
    if ((running > 0)); then
        say "found a partly running cluster; stopping it first"
        stop
    fi
    ensure_packages
    local started
    started=$(date +%s.%N)
    write_munge_key
    write_config
    link_default_config
    # A fresh controller state: no node state is recovered from an earlier run, so
    # "idle" below really means that this slurmd has registered.
    rm -rf "${STATE:?}/spool/slurmctld"/*
    : >"$PIDS"
    start_daemon munged "$STATE/munge/munged.pid" "$STATE/munge/munged.log" \
        runuser -u munge -- munged --force \
        --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    start_daemon slurmctld "$STATE/run/slurmctld.pid" "$STATE/log/slurmctld.log" slurmctld -f "$CONF"
    start_daemon slurmd "$STATE/run/slurmd.pid" "$STATE/log/slurmd.log" slurmd -f "$CONF"
    wait_until_idle
    say "cluster up in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s; state folder $STATE"
    cat "$STATE/env"
}

stop() {
    require_root
    local daemons name pid deadline i
    daemons=$(live_daemons)
    if [[ -z $daemons ]]; then
        rm -f "$PIDS"
        unlink_default_config
        say "not running"
        return 0
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        pid=$(awk -v n="${DAEMONS[i]}" '$1 == n {print $2}' <<<"$daemons")
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    while [[ -n $(live_daemons) ]] && ((SECONDS < deadline)); do sleep 0.2; done
    while read -r name pid; do
        say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done < <(live_daemons)
    sleep 0.2
    [[ -z $(live_daemons) ]] || die 5 "could not stop: $(live_daemons | xargs)"
    rm -f "$PIDS"
    unlink_default_config
    say "stopped $(awk '{print $1 " (pid " $2 ")"}' <<<"$daemons" | paste -sd, - | sed 's/,/, /g')"
}

status() {
    if [[ ! -f $CONF ]] || [[ -z $(live_daemons) ]]; then
        say "not running (state folder $STATE)"
        return 1
    fi
    SLURM_CONF=$CONF sinfo
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state folder: \$SB_SLURM_STATE, default /tmp/saliency-bench-slurm)" >&2; exit 2 ;;
esac
