#!/usr/bin/env bash
# A private single-node Slurm cluster on localhost, for tests/slurm/run.
#
#   tests/slurm/cluster.sh start DIR   # munged, slurmctld, slurmd; waits for the node to be idle
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch, srun, squeue, ... talk to it
#   tests/slurm/cluster.sh stop DIR    # cancels every job, stops the three daemons
#
# Everything (munge key and socket, slurm.conf, state, spool, logs, pid files)
# lives under DIR; the ports are free ones picked at start, so a Slurm or
# munge already running on the machine is neither used nor disturbed. The
# daemons are stopped only by the pids in DIR's pid files (checked against
# their command lines), never by name. Both subcommands print nothing but
# errors; stop is idempotent. The daemons run as the caller (not root: only
# the caller's jobs run). Needs Debian's slurmctld, slurmd, slurm-client and
# munge (scripts/install-deps --slurm), and DIR's parent directories
# searchable by all (munged checks its socket's path).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
conf="$dir/slurm.conf"
socket="$dir/munge/munge.socket"
# The daemons' pid files, in stop order.
pidfiles=("$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/run/munged.pid")

# Prints the pid in pid file $1 when that process is alive and its command
# line names $dir (so a stale file whose pid was reused is ignored).
live_pid() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -dc 0-9 <"$1")"
    [ -n "$pid" ] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/" || return 1
    echo "$pid"
}

# Prints the tail of every daemon log (for failures).
logs() {
    local f
    for f in "$dir"/log/*; do
        [ -s "$f" ] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

die() {
    echo "cluster.sh: $*" >&2
    logs
    # A failed start leaves nothing running.
    [ "$cmd" != start ] || stop
    exit 1
}

# Prints $1 free TCP ports on localhost.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Sends SIGTERM to the daemon of pid file $1, waits up to 15 s, then SIGKILL.
stop_daemon() {
    local pid i
    pid="$(live_pid "$1")" || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        [ -d "/proc/$pid" ] || break
        # A zombie (our own child) has exited.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        echo "cluster.sh: $(basename "$1" .pid) (pid $pid) ignored SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$1"
}

stop() {
    local i jobs
    if live_pid "$dir/run/slurmctld.pid" >/dev/null; then
        export SLURM_CONF="$conf"
        # Cancel every job of this private cluster, then give slurmd time to
        # end the steps (their processes are not ours to kill by name).
        jobs="$(squeue -h -o %i 2>/dev/null || true)"
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 200; i++)); do
                [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
                sleep 0.1
            done
            if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
                echo "cluster.sh: jobs still present after scancel:" >&2
                squeue >&2 || true
            fi
        fi
    fi
    for f in "${pidfiles[@]}"; do
        stop_daemon "$f"
    done
}

start() {
    local ctld_port slurmd_port cpus line i state="" user
    for cmdname in munged mungekey slurmctld slurmd sinfo; do
        command -v "$cmdname" >/dev/null 2>&1 ||
            PATH="$PATH:/usr/sbin:/sbin" command -v "$cmdname" >/dev/null 2>&1 ||
            die "$cmdname not found (scripts/install-deps --slurm)"
    done
    export PATH="$PATH:/usr/sbin:/sbin"
    # Unix sockets have a 108-byte path limit.
    [ ${#socket} -lt 100 ] || die "DIR too long for a unix socket path: $socket"

    # munged wants every directory above its socket searchable by all.
    local up="$dir"
    while up="$(dirname "$up")" && [ "$up" != / ]; do
        [ "$(( $(stat -c %#a "$up") & 1 ))" = 1 ] ||
            die "$up is not searchable by others (chmod o+x): munged refuses a socket below it"
    done

    # Already running here: nothing to do.
    if live_pid "$dir/run/slurmctld.pid" >/dev/null && live_pid "$dir/run/slurmd.pid" >/dev/null &&
        live_pid "$dir/run/munged.pid" >/dev/null; then
        return 0
    fi
    stop
    mkdir -p "$dir"/{munge,munge-key,state,spool,log,run}
    # munged wants the socket's directories searchable by all and its key's
    # directory private.
    chmod 711 "$dir"
    chmod 755 "$dir/munge"
    chmod 700 "$dir/munge-key"

    # munge: a private key, socket, pid, seed and log file.
    if [ ! -s "$dir/munge-key/munge.key" ]; then
        mungekey --create --keyfile="$dir/munge-key/munge.key" >"$dir/log/mungekey.out" 2>&1 ||
            die "mungekey --create failed: $(cat "$dir/log/mungekey.out")"
    fi
    chmod 600 "$dir/munge-key/munge.key"
    munged --socket="$socket" --key-file="$dir/munge-key/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge-key/munged.seed" >"$dir/log/munged.out" 2>&1 ||
        die "munged failed to start"
    for ((i = 0; i < 50; i++)); do
        [ -S "$socket" ] && break
        sleep 0.1
    done
    munge -n -S "$socket" 2>>"$dir/log/munged.out" | unmunge -S "$socket" >/dev/null 2>>"$dir/log/munged.out" ||
        die "munge round trip through $socket failed"

    # slurm.conf: the real node's topology (slurmd -C), advertised with at
    # least 4 CPUs so 3- and 4-rank jobs fit on small CI machines.
    line="$(slurmd -C | head -n 1)"
    cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$line")"
    [ -n "$cpus" ] || die "cannot read the CPU count from slurmd -C: $line"
    if [ "$cpus" -lt 4 ]; then
        line="CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1"
    else
        line="$(grep -o 'CPUs=.*ThreadsPerCore=[0-9]*' <<<"$line")"
    fi
    read -r ctld_port slurmd_port < <(free_ports 2)
    # The daemons run as the caller: as root they run anyone's jobs, as
    # another user only that user's.
    user="$(id -un)"
    cat >"$conf" <<EOF
# Private single-node test cluster written by tests/slurm/cluster.sh.
ClusterName=zftest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No default MPI plugin, as on many sites: the slurm/ scripts must pick PMIx
# themselves (srun --mpi=list) for OpenMPI's ranks to find each other.
MpiDefault=none
EnforcePartLimits=ALL
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# No slurmdbd, so no sacct: finished jobs (state, exit code, times) are
# written to log/jobcomp.txt.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
# sbatch --wait polls every 2 s only while MinJobAge/2 <= 2 (it backs off to
# 8 and 32 s otherwise); finished jobs leave scontrol after it.
MinJobAge=4
KillWait=5
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 $line State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    export SLURM_CONF="$conf"
    slurmctld -f "$conf" >"$dir/log/slurmctld.out" 2>&1 || die "slurmctld failed to start"
    slurmd -f "$conf" -N localhost >"$dir/log/slurmd.out" 2>&1 || die "slurmd failed to start"
    local deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        state="$(timeout 10 sinfo -h -N -o %T 2>/dev/null || true)"
        [ "$state" = idle ] && return 0
        sleep 0.1
    done
    die "node not idle after 30 s (sinfo: ${state:-no answer})"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
