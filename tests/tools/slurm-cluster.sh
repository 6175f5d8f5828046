#!/bin/bash
# slurm-cluster.sh DIR COMMAND...: start a single-node Slurm cluster in DIR (munged,
# slurmctld, slurmd on loopback, their own config, state and logs), run COMMAND with
# SLURM_CONF pointing at it, then stop every daemon (also on failure or a signal).
# Exit status: COMMAND's; 69 when the cluster did not come up (the daemons' own logs
# are printed on stderr). Needs root, Debian's slurm-wlm (22.05) and munge.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR COMMAND..." >&2; exit 2; }
dir=$(realpath -m "$1"); shift
mkdir -p "$dir"
node=$(hostname -s)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port); d_port=$(free_port)
pids=()

cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    [ -n "${mdir:-}" ] && rm -rf "$mdir"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

logs() { for f in "$dir"/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
             [ -s "$f" ] && { echo "== $f" >&2; tail -n 20 "$f" >&2; }; done; true; }

# munge: its own key, socket and logs, run as the munge user (munged refuses root), in a
# dir of its own the munge user can reach (DIR may sit under a private dir; a socket
# path must stay short)
mdir=$(mktemp -d /tmp/qq-munge.XXXXXX)
chmod 0711 "$mdir"
install -d -o munge -g munge -m 0700 "$mdir/key"
install -d -o munge -g munge -m 0711 "$mdir/run"
dd if=/dev/urandom bs=1 count=1024 status=none > "$mdir/key/munge.key"
chown munge:munge "$mdir/key/munge.key"; chmod 0400 "$mdir/key/munge.key"
touch "$dir/munged.log"
sock="$mdir/run/munge.socket"
setpriv --reuid=munge --regid=munge --init-groups munged -F --key-file="$mdir/key/munge.key" \
    --socket="$sock" --pid-file="$mdir/run/munged.pid" --log-file=/dev/null \
    --seed-file="$mdir/key/munged.seed" 2>>"$dir/munged.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "slurm-cluster: munged did not start" >&2; logs; exit 69; }

mkdir -p "$dir/ctld" "$dir/spool"
cat > "$dir/slurm.conf" <<CONF
ClusterName=qqtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=q Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# 22.05 has no CgroupPlugin=disabled: autodetect, without systemd
printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > "$dir/cgroup.conf"
export SLURM_CONF="$dir/slurm.conf"

slurmctld -D -i -f "$SLURM_CONF" 2>>"$dir/slurmctld.log" &
pids+=($!)
slurmd -D -N "$node" -f "$SLURM_CONF" 2>>"$dir/slurmd.log" &   # its mpi/pmix error is harmless
pids+=($!)
up=
for _ in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in idle*|mixed*|allocated*) up=1; break ;; esac
    sleep 0.2
done
[ -n "$up" ] || { echo "slurm-cluster: the node did not become idle (state: ${state:-none})" >&2; logs; exit 69; }
# in the background: a signal is handled at once (bash defers traps while it waits for
# a foreground command), and the command is ended with the daemons
"$@" &
cmd=$!
pids=("$cmd" "${pids[@]}")
wait "$cmd"
