#!/bin/sh
# nginx for examples/stack.yaml: `nginx.sh PORT APP_PORT`, in front of the app, on loopback.
# Its config is written from nginx.conf.in on every start (the ports and the absolute paths
# of this copy of the example); everything it writes stays in stack/run/nginx.
set -eu
port=$1 app_port=$2
run=$(pwd)/stack/run/nginx
mkdir -p "$run/tmp"
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" -e "s|@APP_PORT@|$app_port|g" \
  stack/nginx.conf.in >"$run/nginx.conf"
exec /usr/sbin/nginx -p "$run/" -c "$run/nginx.conf" -e "$run/error.log"
