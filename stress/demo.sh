#!/usr/bin/env bash
# Try ferrule: builds it, starts three mock backends (8082, 8083, 8084) and ferrule with the
# repository's config.json (proxy on :8080, admin API on :8081). Ctrl+C stops everything:
# ferrule first (it drains requests in flight), then the backends.
#   stress/demo.sh [CONFIG.json]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config.json}"
cargo build --release --bins
# a self-signed localhost certificate for trying TLS (ssl.enabled in the config), made once
if [ ! -f certs/cert.pem ] || [ ! -f certs/key.pem ]; then
  certs/generate.sh --force >/dev/null 2>&1 || echo "demo: no openssl: certs/generate.sh skipped (TLS needs it)"
fi

# Both run in sessions of their own, so a Ctrl+C reaches only this script, which then stops
# them in order, exactly once each.
setsid target/release/mock-backend 8082 8083 8084 &
backends=$!
setsid target/release/ferrule "$config" &
proxy=$!

stop() {
  trap '' INT TERM
  kill -INT "$proxy" 2>/dev/null || true   # one signal: ferrule drains, then exits
  wait "$proxy" 2>/dev/null || true
  kill -TERM "$backends" 2>/dev/null || true
  wait "$backends" 2>/dev/null || true
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

echo "try: curl http://127.0.0.1:8080/   and   curl http://127.0.0.1:8081/backends   (Ctrl+C stops)"
wait "$proxy"
