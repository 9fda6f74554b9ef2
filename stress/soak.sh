#!/usr/bin/env bash
# Soak test: ferrule (plain and TLS) under mixed HTTP/1.1 and HTTP/2 traffic (h2 over TLS, h2c) for
# 10 minutes (--minutes N) while backends are killed and restarted, added, drained and removed,
# and the config is reloaded.
# Builds the release binaries (unless --no-build), then runs stress/soak.py; see stress/README.md.
# Exit status: soak.py's (non-zero on a lost retryable request, a wrong body, a dead proxy, an
# HTTP/2 GOAWAY with an error, or RSS / descriptor growth beyond its tolerance).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=1
args=()
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    -h|--help) exec python3 "$root/stress/soak.py" --help ;;
    *) args+=("$a") ;;
  esac
done
if [ "$build" = 1 ]; then
  while [ -e /work/bench.lock ]; do
    echo "soak.sh: a benchmark is running (/work/bench.lock): waiting" >&2
    sleep 30
  done
  (cd "$root" && cargo build --release --bins --quiet)
fi
for bin in ferrule mock-backend; do
  [ -x "$root/target/release/$bin" ] || { echo "soak.sh: target/release/$bin missing" >&2; exit 2; }
done
exec python3 "$root/stress/soak.py" --root "$root" "${args[@]}"
