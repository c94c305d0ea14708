#!/bin/sh
# Redis for examples/stack.yaml: `redis.sh PORT`, on 127.0.0.1 only, no persistence; its pid
# file, log and working directory in stack/run/.
set -eu
mkdir -p stack/run/redis
exec redis-server --bind 127.0.0.1 --port "$1" --daemonize yes --dir stack/run/redis \
  --pidfile "$PWD/stack/run/redis.pid" --logfile "$PWD/stack/run/redis.log" \
  --save '' --appendonly no
