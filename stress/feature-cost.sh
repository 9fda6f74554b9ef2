#!/usr/bin/env bash
# What a feature costs per proxied request, measured A/B: ferrule alone under stress/syscalls.sh's
# load (wrk, 50 keep-alive connections, small responses, three mock backends), once with nothing
# on and once with each feature, the runs interleaved round by round so that the machine's drift
# falls on every variant alike. Prints each round's CPU µs and context switches per request, then
# the medians and each feature's difference from the base.
#
#   stress/feature-cost.sh                       # 3 rounds, W=1, 5 s a run
#   stress/feature-cost.sh --rounds 5 --workers 2 --duration 8
#
# The features: the access log (a file, combined format), request ids, sticky sessions by cookie
# (wrk sends no cookie, so every response sets one: the first-visit path) and by address. Needs
# what stress/syscalls.sh needs (wrk, perf); run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
workers=1
duration=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

log=$(mktemp -d /tmp/ferrule-feature-cost.XXXXXX)
trap 'rm -rf "$log"' EXIT
names=(base access_log request_id sticky_cookie sticky_ip)
extras=(
  '{}'
  "{\"access_log\": \"$log/access.log\"}"
  '{"request_id": true}'
  '{"enable_sticky_sessions": true, "sticky_mode": "cookie"}'
  '{"enable_sticky_sessions": true, "sticky_mode": "ip"}'
)

results=$(mktemp)
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    row=
    for _attempt in 1 2; do # a run whose wrk failed (a port still held) is tried once more
      row=$(FERRULE_EXTRA=${extras[$i]} stress/syscalls.sh --proxies ferrule --workers "$workers" \
        --duration "$duration" | grep '^| ferrule | [0-9]* | [0-9]' || true)
      [ -n "$row" ] && break
    done
    # | ferrule | W | req/s | CPU µs/req | cs/req | preempted | ...
    cpu=$(awk -F'|' '{gsub(/ /, "", $5); print $5}' <<<"$row")
    cs=$(awk -F'|' '{gsub(/ /, "", $6); print $6}' <<<"$row")
    echo "round $round ${names[$i]}: ${cpu:-?} µs/req, ${cs:-?} cs/req"
    [ -n "$cpu" ] && echo "${names[$i]} $cpu $cs" >>"$results"
    : >"$log/access.log"
  done
done

python3 - "$results" "$workers" "$rounds" <<'PY'
import statistics, sys
path, workers, rounds = sys.argv[1:]
runs = {}
for line in open(path):
    name, cpu, cs = line.split()
    runs.setdefault(name, []).append((float(cpu), float(cs)))
base = statistics.median(c for c, _ in runs.get("base", [(float("nan"), 0.0)]))
print(f"\nW={workers}, medians of {rounds} rounds:\n")
print("| variant | CPU µs/req | vs base | context switches/req |")
print("|---|---:|---:|---:|")
for name, rs in runs.items():
    cpu = statistics.median(c for c, _ in rs)
    cs = statistics.median(s for _, s in rs)
    diff = "" if name == "base" else f"{(cpu - base) / base * 100:+.1f} %"
    print(f"| {name} | {cpu:.1f} | {diff} | {cs:.3f} |")
PY
rm -f "$results"
