#!/bin/sh
# Redis for examples/stack.yaml: `redis.sh PORT`, on 127.0.0.1 only, no persistence; its pid
# file, log and working directory in stack/run/redis/. As root it runs as the `redis`
# account (Debian's redis-server package makes it), never as root.
set -eu
mkdir -p stack/run/redis
as=
if [ "$(id -u)" = 0 ]; then
  chown redis:redis stack/run/redis
  as="runuser -u redis --"
fi
exec $as redis-server --bind 127.0.0.1 --port "$1" --daemonize yes --dir stack/run/redis \
  --pidfile "$PWD/stack/run/redis/redis.pid" --logfile "$PWD/stack/run/redis/redis.log" \
  --save '' --appendonly no
