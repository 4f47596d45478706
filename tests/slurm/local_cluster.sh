#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost for the tests: munged, slurmctld and
# slurmd from Debian's packages, configured in DIR and run as root.
#
#   tests/slurm/local_cluster.sh start DIR   prints SLURM_CONF=DIR/slurm.conf once the node is idle
#   tests/slurm/local_cluster.sh stop DIR    cancels every job, stops the daemons
#
# The node offers 2x the machine's cores (SlurmdParameters=config_overrides), so an
# array's tasks run side by side even on a 2-core CI machine.
set -euo pipefail
cmd=${1:?start or stop} dir=${2:?a folder}

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo $p; return; }
  done
}

stop() {
  export SLURM_CONF="$dir/slurm.conf"
  if [ -f "$dir/slurmctld.pid" ]; then
    scancel --full --signal=KILL --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 20); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  for pid in slurmd.pid slurmctld.pid munge/munged.pid; do
    [ -f "$dir/$pid" ] && kill "$(cat "$dir/$pid")" 2>/dev/null || true
  done
  sleep 1
  for pid in slurmd.pid slurmctld.pid munge/munged.pid; do
    [ -f "$dir/$pid" ] && kill -9 "$(cat "$dir/$pid")" 2>/dev/null || true
    rm -f "$dir/$pid"
  done
}

start() {
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "local_cluster.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
  done
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 755 "$dir" "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed" --log-file="$dir/log/munged.log"

  local host cpus mem
  host=$(hostname -s)
  cpus=$(($(nproc) * 2))
  mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) / 2))
  cat >"$dir/slurm.conf" <<CONF
ClusterName=eotest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
SchedulerParameters=sched_interval=1
MinJobAge=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N "$host"
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "SLURM_CONF=$SLURM_CONF"
      return
    fi
    sleep 1
  done
  echo "local_cluster.sh: the node did not come up within 60 s; logs in $dir/log:" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  stop
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "local_cluster.sh: start or stop, not $cmd" >&2; exit 2 ;;
esac
