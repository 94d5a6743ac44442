#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests and for trying the SLURM launcher.
#   scripts/slurm_local.sh start    install what is missing (Debian packages, as root), write the
#                                   configs into $DLF_SLURM_DIR (default dlf-slurm in $TMPDIR or the system temp dir), start munge,
#                                   MariaDB, slurmdbd, slurmctld and slurmd, wait until the node is idle
#   scripts/slurm_local.sh stop     stop the daemons this script started, by their recorded PIDs
#   scripts/slurm_local.sh status   the daemons' PIDs and `sinfo`
#   scripts/slurm_local.sh env      print `export SLURM_CONF=...` (eval it to use sinfo/sbatch/squeue)
# Accounting (slurmdbd + MariaDB) is part of it: submitit reads job states from `sacct`, and without
# it a job that SLURM kills stays UNKNOWN and the sweep waits forever.
set -euo pipefail

DIR=${DLF_SLURM_DIR:-${TMPDIR:-/tmp}/dlf-slurm}
CLUSTER=dlf
DB_PORT=${DLF_SLURM_DB_PORT:-3307}
export SLURM_CONF=$DIR/slurm.conf
# Stopped in this order (the node first, the database last).
DAEMONS=(slurmd slurmctld slurmdbd mariadb munged)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }
# munged and mariadbd run as their own users and write their PID files into folders they own.
pidfile() { case $1 in munged) echo "$DIR/munge/munged.pid" ;; mariadb) echo "$DIR/run/mariadb.pid" ;; *) echo "$DIR/pids/$1" ;; esac; }
alive() { [[ -f $(pidfile "$1") ]] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

wait_for() {  # wait_for <seconds> <what> <command...>
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what not ready after ${seconds} s (logs: $DIR/log)"
}

install_missing() {
  local need=()
  for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [[ ${#need[@]} -eq 0 ]] && return
  [[ $(id -u) -eq 0 ]] || die "missing ${need[*]}; install them (Debian: apt-get install ${need[*]}) or run this as root"
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then say "munge already running"; return; fi
  [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || create-munge-key; chown munge:munge /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge
  mkdir -p "$DIR/munge" && chown munge:munge "$DIR/munge"
  runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log"
  wait_for 10 munge bash -c "munge -n | unmunge"
}

start_mariadb() {
  local data=$DIR/mysql
  if [[ ! -d $data/mysql ]]; then
    mkdir -p "$data" && chown mysql:mysql "$data"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1
  fi
  mkdir -p "$DIR/run" && chown mysql:mysql "$DIR/run"
  # setsid + nohup: the database outlives this shell; its PID file is what `stop` uses.
  setsid nohup mariadbd --user=mysql --datadir="$data" --socket="$DIR/run/mysqld.sock" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/run/mariadb.log" \
    --innodb-buffer-pool-size=32M >/dev/null 2>&1 < /dev/null &
  wait_for 30 MariaDB mariadb --socket="$DIR/run/mysqld.sock" -e "select 1"
  mariadb --socket="$DIR/run/mysqld.sock" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

write_configs() {
  mkdir -p "$DIR"/{state,spool,log,pids}
  chmod 755 "$DIR"  # munged and mariadbd run as their own users (mktemp -d makes it 700)
  # The node as slurmd detects it (CPUs, sockets, cores, memory); the hostname is not `localhost`.
  local node
  node=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost NodeAddr=127.0.0.1/')
  cat >"$DIR/slurm.conf" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster for tests.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/pids/slurmctld
SlurmdPidFile=$DIR/pids/slurmd
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container; task/affinity pins each job to its --cpus-per-task cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
ReturnToService=2
KillWait=5
MinJobAge=300
SchedulerParameters=sched_interval=5
$node
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$DIR/pids/slurmdbd
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"  # slurmdbd refuses a readable one (it holds the DB password)
}

start() {
  if alive slurmctld && alive slurmd; then say "already running"; status; return; fi
  install_missing
  write_configs
  start_munge
  alive mariadb || start_mariadb
  alive slurmdbd || slurmdbd
  wait_for 30 slurmdbd sacctmgr -n show cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true  # already there on a restart
  alive slurmctld || slurmctld
  alive slurmd || slurmd -N localhost
  wait_for 30 "the node" bash -c "sinfo -h -o %T | grep -qx idle"
  say "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T')"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  for d in "${DAEMONS[@]}"; do
    [[ -f $(pidfile "$d") ]] || continue
    local pid
    pid=$(cat "$(pidfile "$d")")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      say "stopped $d ($pid)"
    fi
    rm -f "$(pidfile "$d")"
  done
}

status() {
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then say "$d running ($(cat "$(pidfile "$d")"))"; else say "$d not running (by this script)"; fi
  done
  [[ -f $SLURM_CONF ]] && sinfo 2>&1 || true
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
