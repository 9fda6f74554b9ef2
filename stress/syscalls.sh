#!/usr/bin/env bash
# What each proxy asks of the kernel per request: CPU time, context switches and system calls,
# counted by `perf stat` on the proxy's own processes while wrk drives 50 keep-alive connections
# of small responses through it (the shape of compare.sh's scenario a). ferrule, nginx and HAProxy
# run in turn in front of the same three mock backends, at W=1 and W=2, with no access log and no
# request ids (like the peers).
#
#   stress/syscalls.sh                      # ferrule, nginx, haproxy at W=1 and 2, 5 s each
#   stress/syscalls.sh --duration 10 --workers 2 --proxies ferrule,haproxy
#   stress/syscalls.sh --close              # a new connection per request (scenario d)
#   stress/syscalls.sh --h2                 # h2load, 50 h2c connections x 10 streams (scenario g
#                                           # without TLS)
#   stress/syscalls.sh --backend nginx      # the backends are one nginx worker on three ports, as
#                                           # in compare.sh (default: mock-backend, a thread per
#                                           # connection)
#   FERRULE_EXTRA='{"access_log": "/tmp/a.log"}' stress/syscalls.sh --proxies ferrule
#   FERRULE_BIN=/tmp/ferrule-before stress/syscalls.sh --proxies ferrule   # another build
#
# Needs wrk, perf (Debian's linux-perf, with the syscalls tracepoints: run as root), nginx and
# haproxy (apt-get install wrk linux-perf nginx haproxy). Only 127.0.0.1 is used, ports
# 18300-18320; every process started is stopped by its PID. Run nothing else meanwhile: the
# figures are per request, but a busy machine adds context switches of its own. "Of which
# preempted" counts the switches away from a proxy thread that could still run (sched_switch with
# prev_state 0): the peer it woke took the core; the others are the proxy going to sleep.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5
workers="1 2"
proxies="ferrule,nginx,haproxy"
conns=50
close=0
h2=0
backend=mock
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --workers) workers=${2//,/ }; shift 2 ;;
    --proxies) proxies=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --close) close=1; shift ;;
    --h2) h2=1; shift ;;
    --backend) backend=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in wrk perf h2load; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install wrk linux-perf nghttp2-client)" >&2; exit 2; }
done

base=18300
b1=$((base + 1)); b2=$((base + 2)); b3=$((base + 3))
port=$((base + 10)); admin=$((base + 11))
run=$(mktemp -d /tmp/ferrule-syscalls.XXXXXX)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$run"' EXIT

cargo build --release --bin ferrule --bin mock-backend >/dev/null 2>&1
# FERRULE_BIN: another build to measure (an A/B of two commits: build each, copy the binaries)
ferrule_bin=${FERRULE_BIN:-target/release/ferrule}

# The start of an nginx config, up to inside `http`: no logs, no cap on requests a
# connection. $1 names its files, $2 is the worker count, $3 `master_process`.
nginx_head() {
  mkdir -p "$run/$1-tmp"
  cat <<EOF
daemon off;
master_process $3;
worker_processes $2;
pid $run/$1.pid;
error_log $run/$1-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $run/$1-tmp/body;
    proxy_temp_path $run/$1-tmp/proxy;
    fastcgi_temp_path $run/$1-tmp/fastcgi;
    uwsgi_temp_path $run/$1-tmp/uwsgi;
    scgi_temp_path $run/$1-tmp/scgi;
EOF
}

case "$backend" in
  mock)
    target/release/mock-backend --bind 127.0.0.1 "$b1" "$b2" "$b3" >"$run/backends.log" 2>&1 &
    ;;
  nginx)
    # compare.sh's backend: one nginx worker (epoll), three ports, a 6-byte body
    {
      nginx_head backend 1 off
      cat <<EOF
    server {
        listen 127.0.0.1:$b1 backlog=4096;
        listen 127.0.0.1:$b2 backlog=4096;
        listen 127.0.0.1:$b3 backlog=4096;
        location / { return 200 "hello\\n"; }
    }
}
EOF
    } >"$run/backend.conf"
    nginx -c "$run/backend.conf" >"$run/backends.log" 2>&1 &
    ;;
  *) echo "unknown backend $backend (mock or nginx)" >&2; exit 2 ;;
esac
backends_pid=$!
trap 'stop_all; kill $backends_pid 2>/dev/null || true; wait $backends_pid 2>/dev/null || true; rm -rf "$run"' EXIT

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}
wait_port "$b1"; wait_port "$b2"; wait_port "$b3"

start_ferrule() {
  local w=$1
  local extra=${FERRULE_EXTRA:-"{}"}
  python3 - "$run/ferrule.json" "$w" "$port" "$admin" "$b1" "$b2" "$b3" "$extra" <<'PY'
import json, sys
path, w, port, admin, b1, b2, b3, extra = sys.argv[1:]
cfg = {"port": int(port), "admin_port": int(admin), "bind": "127.0.0.1", "workers": int(w),
       "strategy": "round-robin", "health_check_method": "tcp", "health_check_frequency": "30s",
       "access_log": False, "request_id": False, "upgrade_socket": False, "log_level": "warn",
       "backends": [{"url": f"http://127.0.0.1:{p}"} for p in (b1, b2, b3)]}
cfg.update(json.loads(extra))
json.dump(cfg, open(path, "w"))
PY
  "$ferrule_bin" "$run/ferrule.json" >"$run/ferrule.log" 2>&1 &
  pids+=($!)
}

start_nginx() {
  local w=$1
  {
    nginx_head nginx "$w" on
    cat <<EOF
    upstream backends {
        server 127.0.0.1:$b1; server 127.0.0.1:$b2; server 127.0.0.1:$b3;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port backlog=4096$([ "$h2" = 1 ] && echo " http2");
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
  } >"$run/nginx.conf"
  nginx -c "$run/nginx.conf" >"$run/nginx.log" 2>&1 &
  pids+=($!)
}

start_haproxy() {
  local w=$1
  cat >"$run/haproxy.cfg" <<EOF
global
    nbthread $w
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind 127.0.0.1:$port$([ "$h2" = 1 ] && echo " proto h2")
    default_backend be
backend be
    balance roundrobin
    http-reuse always
    server b1 127.0.0.1:$b1
    server b2 127.0.0.1:$b2
    server b3 127.0.0.1:$b3
EOF
  haproxy -f "$run/haproxy.cfg" -db >"$run/haproxy.log" 2>&1 &
  pids+=($!)
}

# every process of a proxy: the one started, and its children (nginx's workers)
proc_list() {
  local top=$1
  { echo "$top"; pgrep -P "$top" || true; } | paste -sd, -
}

# the client for $1 seconds; prints wrk's "N requests in Ss" (h2load's count is put that way)
load() {
  if [ "$h2" = 1 ]; then
    h2load -c"$conns" -m10 -D "$1" "http://127.0.0.1:$port/" >"$run/h2load.txt" 2>&1 || true
    local n
    n=$(grep -o '[0-9]* succeeded' "$run/h2load.txt" | cut -d' ' -f1)
    echo "${n:-0} requests in ${1}s"
  else
    wrk -t1 -c"$conns" -d"${1}s" "${header[@]}" "http://127.0.0.1:$port/"
  fi
}

printf '| proxy | W | req/s | CPU µs/req | context switches/req | of which preempted | syscalls/req | recv+read/req | send+write/req | epoll_wait/req |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
IFS=, read -ra list <<<"$proxies"
header=()
[ "$close" = 1 ] && header=(-H "Connection: close")
for w in $workers; do
  for proxy in "${list[@]}"; do
    command -v "$proxy" >/dev/null || [ "$proxy" = ferrule ] || { echo "| $proxy | $w | (not installed) |"; continue; }
    "start_$proxy" "$w"
    top=${pids[-1]}
    wait_port "$port"
    load 1 >/dev/null 2>&1 || true
    procs=$(proc_list "$top")
    perf stat -x, -o "$run/perf.csv" \
      -e task-clock,context-switches,raw_syscalls:sys_enter \
      -e sched:sched_switch --filter 'prev_state == 0' \
      -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv' \
      -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg' \
      -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait' \
      -p "$procs" -- sleep "$duration" &
    perf_pid=$!
    load "$duration" >"$run/wrk.txt" 2>&1 || true
    wait "$perf_pid" || true
    stop_all
    python3 - "$run/perf.csv" "$run/wrk.txt" "$proxy" "$w" <<'PY'
import re, sys
perf, wrk, proxy, w = sys.argv[1:]
counts = {}
for line in open(perf):
    parts = line.strip().split(",")
    if len(parts) < 3 or line.startswith("#"):
        continue
    try:
        counts[parts[2]] = float(parts[0])
    except ValueError:
        pass
text = open(wrk).read()
m = re.search(r"(\d+) requests in ([\d.]+)s", text)
if not m:
    print(f"| {proxy} | {w} | (wrk failed) |")
    sys.exit(0)
reqs, secs = int(m.group(1)), float(m.group(2))
def c(*names):
    return sum(counts.get(n, 0.0) for n in names) / max(reqs, 1)
print("| %s | %s | %.0f | %.1f | %.3f | %.3f | %.2f | %.2f | %.2f | %.2f |" % (
    proxy, w, reqs / secs,
    counts.get("task-clock", 0.0) * 1000.0 / max(reqs, 1),  # msec -> µs per request
    # a switch away from a task still runnable (prev_state 0) is a preemption; the rest are
    # the proxy blocking (in epoll_wait, mostly)
    c("context-switches"), c("sched:sched_switch"), c("raw_syscalls:sys_enter"),
    c("syscalls:sys_enter_recvfrom", "syscalls:sys_enter_read", "syscalls:sys_enter_readv"),
    c("syscalls:sys_enter_sendto", "syscalls:sys_enter_write", "syscalls:sys_enter_writev",
      "syscalls:sys_enter_sendmsg"),
    c("syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait")))
PY
    sleep 0.5
  done
done
