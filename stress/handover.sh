#!/usr/bin/env bash
# Zero-downtime restart under load: wrk at full load through the proxy while the proxy is
# restarted, N times; prints the failed requests (non-2xx/3xx) and socket errors (connect, read,
# write, timeout) of each restart and in total.
#
#   ferrule  a second `ferrule config.json` takes the sockets over its upgrade_socket, then the
#            old one gets SIGTERM (as `systemctl start ferrule@b && systemctl stop ferrule@a`)
#   nginx    `nginx -s reload` (new workers, the old ones drain)
#   haproxy  a new `haproxy -x stats.sock -sf OLDPID` (the listening sockets passed over the
#            stats socket, the old process finishes its connections)
#
# usage: stress/handover.sh [-n ROUNDS] [-c CONNECTIONS] [--only ferrule|nginx|haproxy] [--no-build]
# Everything runs on 127.0.0.1 in a temp dir; every process started is stopped by PID at exit.
# Run nothing else on the machine meanwhile: it loads both cores.
set -euo pipefail

rounds=20
connections=50
only=
build=1
base_port=18580
while [[ $# -gt 0 ]]; do
  case $1 in
    -n) rounds=$2; shift 2 ;;
    -c) connections=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "handover.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 1000 ]] || { echo "handover.sh: -n 1..1000" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
((build)) && cargo build --release --bins >&2
ferrule=$root/target/release/ferrule
mock=$root/target/release/mock-backend

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferrule-handover.XXXXXX")
pids=()
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [[ -f $tmp/nginx.pid ]] && kill -QUIT "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  [[ -f $tmp/haproxy.pid ]] && for p in $(cat "$tmp/haproxy.pid"); do kill -USR1 "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

proxy_port=$base_port
admin_port=$((base_port + 1))
backend_port=$((base_port + 2))

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do listening "$1" && return 0; sleep 0.1; done
  echo "handover.sh: nothing listens on $1" >&2
  return 1
}
# wait_gone PID SECONDS: until PID exits
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "handover.sh: pid $1 still runs after $2 s" >&2
  return 1
}
# wait_log FILE TEXT: until FILE has a line with TEXT (10 s)
wait_log() {
  local i
  for ((i = 0; i < 100; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "handover.sh: no '$2' in $1" >&2
  return 1
}

"$mock" "$backend_port" >"$tmp/mock.log" 2>&1 &
pids+=($!)
wait_port "$backend_port"

total_failed=0
total_errors=0
# one round: wrk for 3 s, the restart (function $1) at about 1 s
round() {
  local restart=$1 n=$2 out
  out=$tmp/wrk-$n.txt
  timeout 20 wrk -t 2 -c "$connections" -d 3s "http://127.0.0.1:$proxy_port/" >"$out" 2>&1 &
  local wrk_pid=$!
  sleep 1
  "$restart" "$n"
  wait "$wrk_pid" || true
  local reqs non2xx errs
  reqs=$(awk '/requests in/ {print $1}' "$out")
  non2xx=$(awk -F': ' '/Non-2xx/ {print $2}' "$out")
  errs=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
  non2xx=${non2xx:-0}
  errs=${errs:-0}
  printf '  restart %2d: %7s requests, %3d failed, %3d socket errors %s\n' \
    "$n" "${reqs:-?}" "$non2xx" "$errs" "$(grep 'Socket errors' "$out" || true)"
  total_failed=$((total_failed + non2xx))
  total_errors=$((total_errors + errs))
}

summary() {
  echo "  $1 total over $rounds restarts: $total_failed failed requests, $total_errors socket errors"
  total_failed=0
  total_errors=0
}

# ---------------------------------------------------------------- ferrule
ferrule_config() {
  cat >"$tmp/ferrule.json" <<EOF
{"port": $proxy_port, "admin_port": $admin_port, "bind": "127.0.0.1", "workers": 2,
 "upgrade_socket": "$tmp/ferrule.sock", "shutdown_timeout": "10s",
 "health_check_method": "none",
 "backends": [{"url": "http://127.0.0.1:$backend_port"}]}
EOF
}
ferrule_pid=
# ferrule_start N: starts a ferrule (log ferrule-N.log), sets ferrule_pid once it serves upgrades
ferrule_start() {
  "$ferrule" "$tmp/ferrule.json" >"$tmp/ferrule-$1.log" 2>&1 &
  ferrule_pid=$!
  pids+=("$ferrule_pid")
  wait_log "$tmp/ferrule-$1.log" "upgrade socket on" || { tail "$tmp/ferrule-$1.log" >&2; return 1; }
}
ferrule_restart() {
  local old=$ferrule_pid
  ferrule_start "$1"
  kill -TERM "$old" 2>/dev/null || true
  wait_gone "$old" 15
}
if [[ -z $only || $only == ferrule ]]; then
  echo "ferrule (a new process takes the sockets over upgrade_socket, SIGTERM to the old one):"
  ferrule_config
  ferrule_start 0
  wait_port "$proxy_port"
  for ((n = 1; n <= rounds; n++)); do round ferrule_restart "$n"; done
  summary ferrule
  kill -TERM "$ferrule_pid"
  wait_gone "$ferrule_pid" 15
fi

# ---------------------------------------------------------------- nginx
if [[ -z $only || $only == nginx ]] && command -v nginx >/dev/null; then
  mkdir -p "$tmp/nginx/logs"
  cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port reuseport;
    keepalive_requests 100000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  echo "nginx (nginx -s reload):"
  nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"
  wait_port "$proxy_port"
  nginx_restart() {
    nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -s reload
    sleep 0.5
  }
  for ((n = 1; n <= rounds; n++)); do round nginx_restart "$n"; done
  summary nginx
  nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -s quit || true
  wait_gone "$(cat "$tmp/nginx.pid")" 15 || true
fi

# ---------------------------------------------------------------- haproxy
if [[ -z $only || $only == haproxy ]] && command -v haproxy >/dev/null; then
  cat >"$tmp/haproxy.cfg" <<EOF
global
  nbthread 2
  stats socket $tmp/haproxy.sock mode 600 level admin expose-fd listeners
  hard-stop-after 15s
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$proxy_port
  default_backend be
backend be
  server s1 127.0.0.1:$backend_port
EOF
  echo "haproxy (haproxy -x stats.sock -sf OLDPID):"
  haproxy -f "$tmp/haproxy.cfg" -D -p "$tmp/haproxy.pid"
  wait_port "$proxy_port"
  haproxy_restart() {
    local old
    old=$(cat "$tmp/haproxy.pid")
    haproxy -f "$tmp/haproxy.cfg" -D -p "$tmp/haproxy.pid" -x "$tmp/haproxy.sock" -sf $old
    wait_gone "$old" 15 || true
  }
  for ((n = 1; n <= rounds; n++)); do round haproxy_restart "$n"; done
  summary haproxy
  for p in $(cat "$tmp/haproxy.pid"); do kill -USR1 "$p" 2>/dev/null || true; wait_gone "$p" 15 || true; done
fi
