#!/usr/bin/env bash
# Instructions per request, deterministic: ferrule (W=1, no access log, no request ids) under
# callgrind behind two mock backends, h2load --h1 keep-alive GETs of `/` over 10 connections, run
# once with N and once with 2N requests; the difference divided by N is the cost of one request,
# start-up and shutdown cancelled out. For comparing two builds or two configs where wall-clock
# CPU per request is too noisy on a shared machine (a few percent).
#
#   stress/instructions.sh                              # target/release/ferrule, N = 20000
#   stress/instructions.sh --bin /path/to/ferrule --requests 10000
#   stress/instructions.sh --routes 100                 # 100 routes, the request matching the last
#   stress/instructions.sh --h2                         # HTTP/2 (h2c), 10 streams a connection
#   FERRULE_EXTRA='{"strategy": "p2c"}' stress/instructions.sh
#
# Needs valgrind and h2load (apt-get install valgrind nghttp2-client). Only 127.0.0.1 is used,
# ports 19600-19620; every process started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/ferrule
n=20000
routes=0
h2load_mode=(--h1)
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --requests) n=$2; shift 2 ;;
    --routes) routes=$2; shift 2 ;;
    --h2) h2load_mode=(-m 10); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_annotate h2load python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "$bin is not built (cargo build --release)" >&2; exit 2; }

port=19600
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

target/release/mock-backend --bind 127.0.0.1 $((port + 1)) $((port + 2)) >"$dir/mock.log" 2>&1 &
pids+=($!)

# the config: two backends, and `routes` routes (the last one takes the request)
python3 - "$port" "$routes" "${FERRULE_EXTRA:-}" >"$dir/config.json" <<'PY'
import json, sys
port, routes, extra = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = {"port": port, "admin_port": port + 9, "bind": "127.0.0.1", "workers": 1,
     "health_check_method": "none", "upgrade_socket": False, "access_log": False,
     "request_id": False, "log_level": "warn",
     "backends": [{"url": "http://127.0.0.1:%d" % (port + i)} for i in (1, 2)]}
if routes:
    c["routes"] = [{"host": "h%d.test" % i, "path_prefix": "/p%d/" % i, "pool": "default"}
                   for i in range(routes - 1)]
    c["routes"].append({"host": "127.0.0.1", "path_prefix": "/", "pool": "default"})
if extra:
    c.update(json.loads(extra))
print(json.dumps(c))
PY

# total instructions of one run of $1 requests
run() {
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" "$dir/config.json" \
    >"$dir/ferrule.log" 2>&1 &
  local proxy=$!
  pids+=("$proxy")
  local up=0
  for _ in $(seq 300); do # bounded: 30 s for ferrule to listen under valgrind
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "ferrule did not start: $(tail -3 "$dir/ferrule.log")" >&2; exit 1; }
  h2load "${h2load_mode[@]}" -n "$1" -c 10 "http://127.0.0.1:$port/" >"$dir/h2load.log" 2>&1
  grep -q "$1 succeeded" "$dir/h2load.log" || { echo "requests failed: $(grep succeeded "$dir/h2load.log")" >&2; exit 1; }
  kill -TERM "$proxy"
  wait "$proxy" 2>/dev/null || true
  # awk reads to the end: a reader that stops early would fail the pipe (pipefail)
  callgrind_annotate "$dir/cg.out" 2>/dev/null |
    awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

one=$(run "$n")
two=$(run $((2 * n)))
echo "instructions per request: $(( (two - one) / n )) (routes: $routes, $n and $((2 * n)) requests)"
