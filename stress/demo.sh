#!/usr/bin/env bash
# Try ferrule: builds it, starts three mock backends (8082, 8083, 8084) and ferrule with the
# repository's config.json (proxy on :8080, admin API on :8081). Ctrl+C stops everything.
#   stress/demo.sh [CONFIG.json]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config.json}"
cargo build --release --bins
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
target/release/mock-backend 8082 8083 8084 &
pids+=($!)
target/release/ferrule "$config" &
pids+=($!)
echo "try: curl http://127.0.0.1:8080/   and   curl http://127.0.0.1:8081/backends   (Ctrl+C stops)"
wait "${pids[1]}"
