#!/usr/bin/env bash
# Zero-downtime restart under load: two wrk clients at full load through the proxy while the proxy
# is restarted, N times: one on keep-alive connections, one opening a new connection per request
# (`Connection: close`). Prints, for each restart and in total, each client's failed requests
# (non-2xx/3xx) and socket errors (connect, read, write, timeout).
#
#   ferrule  a second `ferrule config.json` takes the sockets over its upgrade_socket, then the
#            old one gets SIGTERM (as `systemctl start ferrule@b && systemctl stop ferrule@a`)
#   l4       three ferrules behind HAProxy in TCP mode with PROXY v2 (`send-proxy-v2`), two of
#            them restarted as above in each round (the clients' keep-alive connections are then
#            long-lived connections from HAProxy to a ferrule)
#   nginx    `nginx -s reload` (new workers, the old ones drain)
#   haproxy  a new `haproxy -x stats.sock -sf OLDPID` (the listening sockets passed over the
#            stats socket, the old process finishes its connections)
#
# usage: stress/handover.sh [-n ROUNDS] [-c CONNECTIONS] [-C CLOSE_CONNECTIONS] [-b BODY_BYTES]
#                           [-d BODY_DELAY_MS] [--only ferrule|l4|nginx|haproxy] [--no-build]
# -c: the keep-alive client's connections (40); -C: the new-connection client's (10); -b: the
# backend's body size (default: ~25 bytes); -d: the backend sends each head, waits this many ms,
# then the body (0), so that many responses are half sent when a drain begins, as with a real
# backend across a network.
# Everything runs on 127.0.0.1 in a temp dir; every process started is stopped by PID at exit.
# Run nothing else on the machine meanwhile: it loads both cores.
set -euo pipefail

rounds=20
connections=40
close_connections=10
body_size=
body_delay=0
only=
build=1
base_port=18580
while [[ $# -gt 0 ]]; do
  case $1 in
    -n) rounds=$2; shift 2 ;;
    -c) connections=$2; shift 2 ;;
    -C) close_connections=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -b) body_size=$2; shift 2 ;;
    -d) body_delay=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "handover.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 1000 ]] || { echo "handover.sh: -n 1..1000" >&2; exit 1; }
for c in "$connections" "$close_connections"; do
  [[ $c =~ ^[0-9]+$ && $c -ge 1 && $c -le 10000 ]] || { echo "handover.sh: -c and -C 1..10000" >&2; exit 1; }
done
[[ -z $body_size || $body_size =~ ^[0-9]+$ ]] || { echo "handover.sh: -b BYTES" >&2; exit 1; }
[[ $body_delay =~ ^[0-9]+$ && $body_delay -le 60000 ]] || { echo "handover.sh: -d 0..60000 (ms)" >&2; exit 1; }
case $only in
  '' | ferrule | l4 | nginx | haproxy) ;;
  *) echo "handover.sh: --only ferrule|l4|nginx|haproxy" >&2; exit 1 ;;
esac

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

"$mock" ${body_size:+--body-size "$body_size"} --body-delay "$body_delay" "$backend_port" \
  >"$tmp/mock.log" 2>&1 &
pids+=($!)
wait_port "$backend_port"

total_failed=0
total_errors=0
total_close_failed=0
total_close_errors=0
# wrk_figures FILE: "REQUESTS FAILED SOCKET_ERRORS" of one wrk run
wrk_figures() {
  local reqs non2xx errs
  reqs=$(awk '/requests in/ {print $1}' "$1")
  non2xx=$(awk -F': ' '/Non-2xx/ {print $2}' "$1")
  errs=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$1")
  echo "${reqs:-0} ${non2xx:-0} ${errs:-0}"
}
# one round: both clients for 3 s, the restart (function $1) at about 1 s
round() {
  local restart=$1 n=$2 ka close
  ka=$tmp/wrk-$n.txt
  close=$tmp/wrk-close-$n.txt
  timeout 20 wrk -t 1 -c "$connections" -d 3s "http://127.0.0.1:$proxy_port/" >"$ka" 2>&1 &
  local ka_pid=$!
  timeout 20 wrk -t 1 -c "$close_connections" -d 3s -H 'Connection: close' \
    "http://127.0.0.1:$proxy_port/" >"$close" 2>&1 &
  local close_pid=$!
  sleep 1
  "$restart" "$n"
  wait "$ka_pid" || true
  wait "$close_pid" || true
  local r f e cr cf ce
  read -r r f e <<<"$(wrk_figures "$ka")"
  read -r cr cf ce <<<"$(wrk_figures "$close")"
  printf '  restart %2d: keep-alive %6s requests, %3d failed, %3d socket errors | new connections %6s requests, %3d failed, %3d socket errors\n' \
    "$n" "$r" "$f" "$e" "$cr" "$cf" "$ce"
  grep -h 'Socket errors' "$ka" "$close" | sed 's/^/     /' || true
  total_failed=$((total_failed + f))
  total_errors=$((total_errors + e))
  total_close_failed=$((total_close_failed + cf))
  total_close_errors=$((total_close_errors + ce))
}

summary() {
  echo "  $1 total over $rounds restarts: keep-alive $total_failed failed requests, $total_errors socket errors;" \
    "new connections $total_close_failed failed requests, $total_close_errors socket errors"
  total_failed=0
  total_errors=0
  total_close_failed=0
  total_close_errors=0
}

# ---------------------------------------------------------------- ferrule
# ferrule_config I PORT ADMIN_PORT [JSON_FIELDS]: the config of instance I (ferrule-I.json), with
# its own upgrade socket
ferrule_config() {
  cat >"$tmp/ferrule-$1.json" <<EOF
{"port": $2, "admin_port": $3, "bind": "127.0.0.1", "workers": 2,
 "upgrade_socket": "$tmp/ferrule-$1.sock", "shutdown_timeout": "10s",
 "health_check_method": "none", "access_log": false,
 "backends": [{"url": "http://127.0.0.1:$backend_port"}]${4:+, $4}}
EOF
}
declare -A ferrule_pids=()
# ferrule_start I N: starts instance I (log ferrule-I-N.log); ferrule_pids[I] is its pid once it
# serves upgrades
ferrule_start() {
  local log=$tmp/ferrule-$1-$2.log
  "$ferrule" "$tmp/ferrule-$1.json" >"$log" 2>&1 &
  ferrule_pids[$1]=$!
  pids+=("$!")
  wait_log "$log" "upgrade socket on" || { tail "$log" >&2; return 1; }
}
# ferrule_handover I N: a new process for instance I takes over, the old one gets SIGTERM (and is
# waited for by wait_drained)
draining=()
ferrule_handover() {
  local old=${ferrule_pids[$1]}
  ferrule_start "$1" "$2"
  kill -TERM "$old" 2>/dev/null || true
  draining+=("$old")
}
wait_drained() {
  local pid
  for pid in "${draining[@]}"; do wait_gone "$pid" 15; done
  draining=()
}
ferrule_restart() {
  ferrule_handover 0 "$1"
  wait_drained
}
if [[ -z $only || $only == ferrule ]]; then
  echo "ferrule (a new process takes the sockets over upgrade_socket, SIGTERM to the old one):"
  ferrule_config 0 "$proxy_port" "$admin_port"
  ferrule_start 0 0
  wait_port "$proxy_port"
  for ((n = 1; n <= rounds; n++)); do round ferrule_restart "$n"; done
  summary ferrule
  kill -TERM "${ferrule_pids[0]}"
  wait_gone "${ferrule_pids[0]}" 15
fi

# ---------------------------------------------------------------- l4: HAProxy (TCP, PROXY v2) before three ferrules
if [[ -z $only || $only == l4 ]] && command -v haproxy >/dev/null; then
  l4_servers=
  for i in 1 2 3; do
    port=$((base_port + 10 + 2 * i))
    ferrule_config "$i" "$port" $((port + 1)) '"proxy_protocol": true, "trusted_proxies": ["127.0.0.1"]'
    l4_servers+="  server f$i 127.0.0.1:$port send-proxy-v2"$'\n'
  done
  cat >"$tmp/haproxy-l4.cfg" <<EOF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$proxy_port
  default_backend be
backend be
  balance roundrobin
$l4_servers
EOF
  echo "l4 (HAProxy in TCP mode with PROXY v2 before three ferrules, two of them restarted each round):"
  for i in 1 2 3; do ferrule_start "$i" 0; done
  haproxy -f "$tmp/haproxy-l4.cfg" -db >"$tmp/haproxy-l4.log" 2>&1 &
  l4_pid=$!
  pids+=("$l4_pid")
  wait_port "$proxy_port"
  # round n restarts instance n mod 3 + 1 and the next one, one after the other
  l4_restart() {
    ferrule_handover $(($1 % 3 + 1)) "$1"
    ferrule_handover $((($1 + 1) % 3 + 1)) "$1"
    wait_drained
  }
  for ((n = 1; n <= rounds; n++)); do round l4_restart "$n"; done
  summary l4
  kill -TERM "$l4_pid"
  wait_gone "$l4_pid" 15 || true
  for i in 1 2 3; do
    kill -TERM "${ferrule_pids[$i]}"
    wait_gone "${ferrule_pids[$i]}" 15
  done
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
