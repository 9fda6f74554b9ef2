#!/usr/bin/env bash
# CPU per new TLS connection, ferrule against nginx and HAProxy on the same backends, for full
# handshakes and for resumed ones; then the memory an idle TLS keep-alive connection costs each. The shared harness (../shared/bench/compare.sh --serve) brings
# up the backends and the three proxies with the same certificate; `openssl s_time` then opens
# connections one after another to each proxy's TLS port (-new: a full handshake every time;
# -reuse: the first full, the rest resumed), each fetching /small, for DURATION seconds. The proxy's
# CPU (utime+stime of its processes, from /proc) is divided by the connections made. Last,
# stress/idle_tls.py holds IDLE connections (each after one request) to each proxy and the growth
# of the proxy's resident memory is divided by them.
#
#   stress/tls-handshakes.sh [DURATION [IDLE]]   (defaults 8 s per run, 2000 idle; ~2 min in all)
#
# Ratios matter, not absolute figures (the machine is shared): read the "÷nginx" and "÷haproxy"
# columns. Only 127.0.0.1 is used; every process started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-8}"
idle="${2:-2000}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench=../shared/bench
bin="$(pwd)/target/release/ferrule"
cargo build --release --bin ferrule >/dev/null 2>&1
for t in openssl nginx haproxy wrk; do
  command -v "$t" >/dev/null || { echo "tls-handshakes: $t is missing" >&2; exit 1; }
done

log=$(mktemp)
PROJECT_BIN="$bin" "$bench/compare.sh" --serve $((duration * 6 + 60)) --workers 1 \
  --proxies nginx,haproxy,project --idle-conns 0 --project-tls on >/dev/null 2>"$log" &
harness=$!
cleanup() { kill -INT "$harness" 2>/dev/null || true; wait "$harness" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

for _ in $(seq 120); do
  grep -q "serving for" "$log" && break
  kill -0 "$harness" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 1
done
grep -q "serving for" "$log" || { echo "tls-handshakes: the harness did not come up" >&2; exit 1; }

# "ready: NAME http :P  tls :T  pids [a, b]"
cpu_of() { # total utime+stime (clock ticks) of the given pids
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
rss_of() { # total VmRSS (KB) of the given pids
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status"))); done
  echo "$total"
}

declare -A full resumed kb kb_note
names=()
while read -r name tls _; do
  names+=("$name")
  # the processes serving the TLS port (ferrule runs a second instance for TLS)
  pids=$(ss -Htlnp "sport = :$tls" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' ')
  for p in $pids; do # and their parents that are the same program (nginx's master)
    pp=$(awk '{print $4}' "/proc/$p/stat")
    [ "$(cat "/proc/$pp/comm" 2>/dev/null)" = "$(cat "/proc/$p/comm")" ] && pids="$pids $pp"
  done
  pids=$(tr ' ' '\n' <<<"$pids" | sort -u | tr '\n' ' ')
  for mode in new reuse; do
    before=$(cpu_of $pids)
    out=$(openssl s_time -connect "127.0.0.1:$tls" -"$mode" -www /small -time "$duration" 2>/dev/null \
      | grep -m1 "connections in" || true)
    after=$(cpu_of $pids)
    conns=$(awk '{print $1}' <<<"$out")
    if [ -z "$conns" ] || [ "$conns" = 0 ]; then
      echo "tls-handshakes: $name -$mode made no connection" >&2
      exit 1
    fi
    us=$(awk -v c="$conns" -v d=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / c}')
    if [ "$mode" = new ]; then full[$name]="$us $conns"; else resumed[$name]="$us $conns"; fi
  done
  before=$(rss_of $pids)
  coproc HOLD { python3 stress/idle_tls.py "$tls" -n "$idle" --max-hold 120; }
  read -r _ ok failed <&"${HOLD[0]}"
  held=$(rss_of $pids)
  echo >&"${HOLD[1]}"
  wait "$HOLD_PID" 2>/dev/null || true
  kb[$name]=$(awk -v a="$before" -v b="$held" -v n="$ok" 'BEGIN {printf "%.2f", (b - a) / n}')
  kb_note[$name]="$ok held, $failed failed"
done < <(sed -n 's/.*ready: \([^ ]*\) *http :[0-9]*  tls :\([0-9]*\)  pids \[\(.*\)\]/\1 \2 \3/p' "$log" | tr -d ',')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
echo "| target | full: µs CPU/conn (conns) | resumed: µs CPU/conn (conns) | full ÷nginx, ÷haproxy | resumed ÷nginx, ÷haproxy |"
echo "|---|---:|---:|---:|---:|"
for n in "${names[@]}"; do
  read -r f fc <<<"${full[$n]}"
  read -r r rc <<<"${resumed[$n]}"
  read -r nf _ <<<"${full[nginx-w1]:-0 0}"
  read -r hf _ <<<"${full[haproxy-w1]:-0 0}"
  read -r nr _ <<<"${resumed[nginx-w1]:-0 0}"
  read -r hr _ <<<"${resumed[haproxy-w1]:-0 0}"
  echo "| $n | $f ($fc) | $r ($rc) | $(ratio "$f" "$nf"), $(ratio "$f" "$hf") | $(ratio "$r" "$nr"), $(ratio "$r" "$hr") |"
done
echo
echo "| target | idle TLS keep-alive connection: KB each (ΔRSS ÷ held) |"
echo "|---|---:|"
for n in "${names[@]}"; do echo "| $n | ${kb[$n]} (${kb_note[$n]}) |"; done
