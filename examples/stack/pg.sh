#!/bin/sh
# PostgreSQL for examples/stack.yaml: `pg.sh start PORT` (initdb on first start, then
# pg_ctl start, waiting until it accepts connections) and `pg.sh stop` (pg_ctl's fast
# shutdown: SIGTERM alone is postgres's "smart" shutdown, which waits for every client).
# Run from examples/ (autoheal runs scripts in the config file's directory). As root the
# cluster is the `postgres` account's; postgres refuses to run as root.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=stack/run/pg/data
as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$1" in
start)
  port=$2
  mkdir -p stack/run/pg
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres stack/run/pg; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    # Everything written in stack/run/pg is written as postgres, never by root through a path
    # that account controls. A password nobody is told: connections must authenticate
    # (scram), and a readiness probe needs no password (an authentication request is ready).
    as sh -c 'umask 077; head -c 18 /dev/urandom | base64 >stack/run/pg/pwfile' &&
      as sh -c 'exec "$0" "$@" >stack/run/pg/initdb.log 2>&1' "$bin/initdb" -D "$data" \
        -A scram-sha-256 --pwfile=stack/run/pg/pwfile -U postgres --no-sync
  fi
  # A postmaster.pid naming a zombie is stale: a killed postmaster that no one reaped (in a
  # container whose pid 1 does not reap orphans). postgres would take it for a running
  # postmaster and refuse to start; a zombie holds no memory, socket or file of the cluster.
  if [ -f "$data/postmaster.pid" ]; then
    old=$(head -n 1 "$data/postmaster.pid")
    if [ -r "/proc/$old/stat" ] && [ "$(sed 's/.*) //' "/proc/$old/stat" | cut -d' ' -f1)" = Z ]; then
      echo "pg.sh: postmaster.pid names pid $old, a zombie: removed"
      rm -f "$data/postmaster.pid"
    fi
  fi
  # Loopback TCP only: no unix socket.
  exec_opts="-p $port -h 127.0.0.1 -c unix_socket_directories= -c fsync=off"
  as "$bin/pg_ctl" -D "$data" -l stack/run/pg/log -o "$exec_opts" -w -t 30 start
  ;;
stop)
  as "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop
  ;;
*)
  echo "usage: pg.sh start PORT | pg.sh stop" >&2
  exit 2
  ;;
esac
