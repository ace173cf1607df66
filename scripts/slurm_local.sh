#!/usr/bin/env bash
# A throw-away single-node Slurm (Debian's slurm-wlm + munge) for trying `hgprune run --launcher slurm` and for
# tests/test_launch.py. Needs root. Everything lives under $SLURM_LOCAL_DIR (default /tmp/hgprune-slurm); the
# system's /etc/slurm is not touched: clients find the cluster through SLURM_CONF, printed by `start`.
#
#   scripts/slurm_local.sh start    # munged + slurmctld + slurmd, waits until the node is idle
#   export SLURM_CONF=/tmp/hgprune-slurm/slurm.conf
#   scripts/slurm_local.sh stop     # stops the three daemons it started (by their pid files) and removes the dir
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/hgprune-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname -s)"

start() {
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "slurm_local.sh: $tool not found; apt-get install -y slurm-wlm munge" >&2; exit 3; }
    done
    [ "$(id -u)" = 0 ] || { echo "slurm_local.sh: must run as root (slurmd starts jobs as their users)" >&2; exit 3; }
    mkdir -p "$DIR"/{spool,state,munge,log}
    chown munge:munge "$DIR/munge"
    if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
    chown munge:munge "$DIR/log"
    runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munge/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    cpus="$(nproc)"
    memory_mb="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))"
    cat >"$CONF" <<EOF
ClusterName=hgprune-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmdSpoolDir=$DIR/spool
StateSaveLocation=$DIR/state
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MpiDefault=none
NodeName=$NODE CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # slurmd initialises a cgroup plugin even with task/none; v1 (what containers usually mount), no systemd
    printf 'CgroupPlugin=cgroup/v1\nIgnoreSystemd=yes\n' >"$DIR/cgroup.conf"
    export SLURM_CONF="$CONF"
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            echo "Slurm is up: export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    echo "slurm_local.sh: the node did not become idle in 60 s; logs in $DIR/log" >&2
    sinfo >&2 || true
    exit 4
}

stop() {
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if [ -s "$pidfile" ]; then
            pid="$(cat "$pidfile")"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
    done
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
