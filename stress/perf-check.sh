#!/usr/bin/env bash
# The guard against performance regressions: run it before submitting a change to the data path
# (session, transport, http/, upstream, buffer, balancer, worker, listener). About three minutes:
# ../shared/bench/compare.sh --quick on scenarios a (small, keep-alive), b (1000 connections),
# d (new connection per request) and e (TLS), ferrule beside nginx and HAProxy on the same
# backends, then one line per scenario with ferrule's CPU per request divided by each peer's (the
# figure that isolates the proxy on this shared machine), its throughput ratio and p99.
#
#   stress/perf-check.sh                 # a, b, d, e at W=1
#   stress/perf-check.sh --workers 2     # any extra compare.sh options
#
# Target (DESIGN.md): CPU/req <= 0.80 x the better peer, req/s >= theirs. A quick run is one round
# of 5 s: differences under ~10 % are noise; confirm anything worse with a second run, and
# anything for the README with the full compare.sh (3 rounds, W=1 and 2, ~18 min). Run nothing
# else on the machine meanwhile. Exit status 1 when a scenario misses the CPU target.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=../shared/bench
cargo build --release --bin ferrule >/dev/null 2>&1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
PROJECT_BIN="$(pwd)/target/release/ferrule" "$bench/compare.sh" --quick --scenarios abde \
  --idle-conns 0 --proxies nginx,haproxy,project --project-tls on "$@" >"$out" 2>/dev/null
json=$(grep -o 'JSON: .*' "$out" | cut -d' ' -f2)
python3 - "$json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
rows = {(s["scenario"], s["kind"], s["W"]): s for s in summary}
missed = 0
print("| sc | W | CPU/req µs ferrule | ÷nginx | ÷haproxy | req/s ÷better peer | p99 ms ferrule / better peer | target |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for (sc, kind, w), p in sorted(rows.items()):
    if kind != "project":
        continue
    peers = [rows[k] for k in ((sc, "nginx", w), (sc, "haproxy", w)) if k in rows]
    if not peers:
        continue
    best_cpu = min(x["proxy_cpu_us_per_req"] for x in peers)
    best_rps = max(x["rps"] for x in peers)
    best_p99 = min(x["p99_ms"] for x in peers)
    cpu = p["proxy_cpu_us_per_req"]
    ratio = cpu / best_cpu
    ok = ratio <= 0.80
    missed += not ok
    print("| %s | %s | %.1f | %s | %s | %.2f | %.2f / %.2f | %s |" % (
        sc, w, cpu,
        "%.2f" % (cpu / rows[(sc, "nginx", w)]["proxy_cpu_us_per_req"]) if (sc, "nginx", w) in rows else "-",
        "%.2f" % (cpu / rows[(sc, "haproxy", w)]["proxy_cpu_us_per_req"]) if (sc, "haproxy", w) in rows else "-",
        p["rps"] / best_rps, p["p99_ms"], best_p99,
        "ok" if ok else "ABOVE 0.80"))
print("\nraw: %s" % sys.argv[1])
sys.exit(1 if missed else 0)
PY
