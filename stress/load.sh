#!/usr/bin/env bash
# Load test: build ferrule, start three mock backends and ferrule, drive it with wrk, print
# requests/s, latency percentiles and how the requests were split over the backends (from the
# admin API), then stop everything this script started. Only 127.0.0.1 is used.
# See stress/README.md; `stress/load.sh --help` for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: stress/load.sh [OPTIONS]

Builds release binaries, starts 3 mock backends and ferrule (generated config in a temp dir),
runs wrk against the proxy, prints req/s, p50/p90/p99 latency and the per-backend split.

  -d, --duration D      wrk duration: N, Ns, Nm or Nh (default 10s)
  -c, --connections N   wrk connections (default 50)
  -t, --threads N       wrk threads (default 2)
  -s, --strategy S      round-robin | weighted-round-robin | least-conn
                        (default weighted-round-robin; weights 5,3,2 for it, 1,1,1 otherwise)
  -w, --workers N       ferrule worker threads (default: ferrule's, one per core)
      --path P          request path (default /)
      --tls             ssl.enabled in the config (certs/cert.pem + certs/key.pem, or a
                        self-signed pair made with openssl if those are missing), https URL
      --port BASE       proxy on BASE, admin on BASE+1, backends on BASE+2..BASE+4 (default 18480)
      --config FILE     use FILE as ferrule's config: ports, scheme and backends come from it, and
                        mock backends are started on the ports of its 127.0.0.1/localhost backends
                        (-s, -w, --tls and --port are then ignored)
      --no-build        skip `cargo build --release --bins` (use the binaries in target/release)
  -h, --help            this help
EOF
}

die() {
  echo "load.sh: $*" >&2
  exit 1
}

duration=10s
connections=50
threads=2
strategy=weighted-round-robin
workers=
path=/
tls=0
base_port=18480
config_file=
build=1
ignored=()

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (try --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    -d | --duration) need_value "$@"; duration=$2; shift 2 ;;
    -c | --connections) need_value "$@"; connections=$2; shift 2 ;;
    -t | --threads) need_value "$@"; threads=$2; shift 2 ;;
    -s | --strategy) need_value "$@"; strategy=$2; ignored+=("$1"); shift 2 ;;
    -w | --workers) need_value "$@"; workers=$2; ignored+=("$1"); shift 2 ;;
    --path) need_value "$@"; path=$2; shift 2 ;;
    --tls) tls=1; ignored+=("$1"); shift ;;
    --port) need_value "$@"; base_port=$2; ignored+=("$1"); shift 2 ;;
    --config) need_value "$@"; config_file=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0)); }

# wrk's duration syntax, in seconds (for the hard time limit around wrk)
if [[ $duration =~ ^([0-9]+)([smh]?)$ ]]; then
  case ${BASH_REMATCH[2]} in
    m) duration_s=$((10#${BASH_REMATCH[1]} * 60)) ;;
    h) duration_s=$((10#${BASH_REMATCH[1]} * 3600)) ;;
    *) duration_s=$((10#${BASH_REMATCH[1]})) ;;
  esac
  ((duration_s > 0)) || die "--duration must be positive"
else
  die "--duration '$duration': expected N, Ns, Nm or Nh"
fi
is_uint "$connections" || die "--connections must be a positive integer"
is_uint "$threads" || die "--threads must be a positive integer"
((threads <= connections)) || die "--threads ($threads) must not exceed --connections ($connections)"
[[ -z $workers ]] || is_uint "$workers" || die "--workers must be a positive integer"
[[ $path == /* ]] || die "--path must start with /"
case $strategy in
  round-robin | least-conn) weights=(1 1 1) ;;
  weighted-round-robin) weights=(5 3 2) ;;
  *) die "unknown strategy '$strategy' (round-robin, weighted-round-robin or least-conn)" ;;
esac
if ! is_uint "$base_port" || ((base_port + 4 > 65535)); then die "--port must be 1..65531"; fi

command -v python3 >/dev/null || die "python3 is required (JSON parsing)"
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "load.sh: wrk not found, installing it with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; } ||
      die "could not install wrk"
  else
    die "wrk is required: install it with 'sudo apt-get install wrk' (or build github.com/wg/wrk)"
  fi
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# ---- processes: everything started is recorded here and stopped by PID on exit ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferrule-load.XXXXXX")
pids=()
cleaned=0
cleanup() {
  ((cleaned)) && return
  cleaned=1
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is something accepting TCP connections on 127.0.0.1:$1?
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for WHAT PID PORT...: poll until every port accepts, or PID dies, or 10 s pass.
wait_for() {
  local what=$1 pid=$2 i port up
  shift 2
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    up=1
    for port in "$@"; do listening "$port" || { up=0; break; }; done
    ((up)) && return 0
    sleep 0.1
  done
  echo "load.sh: $what did not start listening on port(s) $* within 10 s" >&2
  return 1
}

show_log() {
  echo "---- $1 (last 20 lines) ----" >&2
  tail -n 20 "$2" >&2 || true
  echo "----" >&2
}

# ---- configuration ----
config=$tmp/ferrule.json
if [[ -n $config_file ]]; then
  [[ -r $config_file ]] || die "cannot read --config '$config_file'"
  ((${#ignored[@]} == 0)) || echo "load.sh: with --config, ignoring ${ignored[*]}" >&2
  cp "$config_file" "$config"
  # port, admin port, scheme, then the ports of local backends
  mapfile -t facts < <(python3 - "$config" <<'EOF'
import json, re, sys
c = json.load(open(sys.argv[1]))
print(c.get("port", 8080))
print(c.get("admin_port", 8081))
print("https" if (c.get("ssl") or {}).get("enabled") else "http")
ports = []
for b in c.get("backends", []):
    url = b.get("url", "") if isinstance(b, dict) else str(b)
    m = re.match(r"(?i)^http://(127\.0\.0\.1|localhost):(\d+)/?$", url)
    if m:
        ports.append(m.group(2))
    else:
        print(f"load.sh: no mock backend for {url!r} (only http://127.0.0.1:PORT and "
              "http://localhost:PORT are started)", file=sys.stderr)
print(" ".join(ports))
EOF
  ) || die "--config '$config_file' is not a JSON config"
  proxy_port=${facts[0]}
  admin_port=${facts[1]}
  scheme=${facts[2]}
  read -r -a backend_ports <<<"${facts[3]:-}"
  [[ $proxy_port != 0 && $admin_port != 0 ]] || die "--config: port and admin_port must not be 0"
else
  proxy_port=$base_port
  admin_port=$((base_port + 1))
  backend_ports=($((base_port + 2)) $((base_port + 3)) $((base_port + 4)))
  scheme=http
  cert=$root/certs/cert.pem
  key=$root/certs/key.pem
  if ((tls)); then
    scheme=https
    if [[ ! -r $cert || ! -r $key ]]; then
      command -v openssl >/dev/null || die "--tls: $cert / $key missing and openssl not found"
      echo "load.sh: certs/cert.pem or certs/key.pem missing: using a self-signed pair in $tmp" >&2
      cert=$tmp/cert.pem
      key=$tmp/key.pem
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$key" -out "$cert" 2>/dev/null || die "openssl could not make a certificate"
    fi
  fi
  python3 - "$config" "$proxy_port" "$admin_port" "$strategy" "${workers:-0}" "$tls" \
    "$cert" "$key" "${backend_ports[*]}" "${weights[*]}" <<'EOF'
import json, sys
out, port, admin, strategy, workers, tls, cert, key, ports, weights = sys.argv[1:]
c = {
    "port": int(port),
    "admin_port": int(admin),
    "bind": "127.0.0.1",
    "admin_bind": "127.0.0.1",
    "strategy": strategy,
    "shutdown_timeout": "1s",
    "backends": [{"url": f"http://127.0.0.1:{p}", "weight": int(w)}
                 for p, w in zip(ports.split(), weights.split())],
    "ssl": {"enabled": tls == "1", "cert_file": cert, "key_file": key},
}
if int(workers) > 0:
    c["workers"] = int(workers)
json.dump(c, open(out, "w"), indent=2)
EOF
fi

for port in "$proxy_port" "$admin_port" "${backend_ports[@]}"; do
  if listening "$port"; then
    die "port $port is already in use on 127.0.0.1 (pick another base with --port)"
  fi
done

# ---- build and start ----
if ((build)); then
  echo "load.sh: cargo build --release --bins" >&2
  cargo build --release --bins >&2 || die "build failed"
fi
for bin in target/release/ferrule target/release/mock-backend; do
  [[ -x $bin ]] || die "$bin not found (run without --no-build)"
done

if ((${#backend_ports[@]} > 0)); then
  target/release/mock-backend --bind 127.0.0.1 "${backend_ports[@]}" >"$tmp/backends.log" 2>&1 &
  pids+=($!)
  wait_for "mock-backend" "${pids[-1]}" "${backend_ports[@]}" ||
    { show_log "mock-backend" "$tmp/backends.log"; die "mock backends did not start"; }
fi

target/release/ferrule "$config" >"$tmp/ferrule.log" 2>&1 &
ferrule_pid=$!
pids+=("$ferrule_pid")
if ! wait_for "ferrule" "$ferrule_pid" "$proxy_port" "$admin_port"; then
  show_log "ferrule" "$tmp/ferrule.log"
  if kill -0 "$ferrule_pid" 2>/dev/null; then
    die "ferrule is running but not listening on $proxy_port/$admin_port"
  fi
  [[ $scheme == https ]] && die "the proxy failed to start with ssl.enabled=true (log above)"
  die "the proxy failed to start (log above)"
fi

url="$scheme://127.0.0.1:$proxy_port$path"
admin="http://127.0.0.1:$admin_port/backends"

# One request through the proxy first: a clear message beats a wrk run full of errors.
if ! probe=$(python3 - "$url" 2>&1 <<'EOF'
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5, context=ctx)
    print(r.status, r.headers.get("X-Backend", "?"))
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("X-Backend", "?"))
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
EOF
); then
  show_log "ferrule" "$tmp/ferrule.log"
  if [[ $scheme == https ]]; then
    die "ferrule is listening but HTTPS to $url failed ($probe): TLS termination is probably not implemented yet"
  fi
  die "a request to $url failed: $probe"
fi
echo "load.sh: probe $url -> status ${probe% *}, X-Backend ${probe#* }" >&2

snapshot() {
  python3 -c 'import json, sys, urllib.request
print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1], timeout=5))))' "$admin"
}
snapshot >"$tmp/before.json" || die "admin API $admin did not answer"

# ---- load ----
if [[ -n $config_file ]]; then
  setup="strategy and workers from $config_file"
else
  setup="strategy $strategy, workers ${workers:-ferrule default}"
fi
echo "load.sh: wrk -t$threads -c$connections -d$duration --latency $url ($setup)" >&2
# In the background, so that Ctrl+C / SIGTERM interrupt `wait` at once and the trap stops wrk too.
timeout -k 5 $((duration_s + 30)) \
  wrk -t"$threads" -c"$connections" -d"$duration" --latency --timeout 5s "$url" \
  >"$tmp/wrk.txt" 2>&1 &
pids+=($!)
wrk_rc=0
wait "${pids[-1]}" || wrk_rc=$?
snapshot >"$tmp/after.json" || die "admin API $admin did not answer after the run"
kill -0 "$ferrule_pid" 2>/dev/null || { show_log "ferrule" "$tmp/ferrule.log"; die "ferrule died during the run"; }
if ((wrk_rc != 0)); then
  cat "$tmp/wrk.txt" >&2
  die "wrk failed (exit $wrk_rc)"
fi

# ---- report ----
python3 - "$tmp/wrk.txt" "$tmp/before.json" "$tmp/after.json" <<'EOF'
import json, re, sys
wrk = open(sys.argv[1]).read()
before = {b["url"]: b.get("total_requests", 0) for b in json.load(open(sys.argv[2]))["backends"]}
after = json.load(open(sys.argv[3]))

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return text
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]

rps = re.search(r"Requests/sec:\s*([\d.]+)", wrk)
total = re.search(r"(\d+) requests in ([\d.]+\w+)", wrk)
pct = dict(re.findall(r"^\s*(50|75|90|99)%\s+(\S+)", wrk, re.M))
print(f"requests/s   {float(rps.group(1)):,.0f}" if rps else "requests/s   ? (no wrk summary)")
if total:
    print(f"requests     {int(total.group(1)):,} in {total.group(2)}")
print("latency      " + "  ".join(
    f"p{p} {ms(pct[p]):.2f} ms" if isinstance(ms(pct.get(p, "")), float) else f"p{p} ?"
    for p in ("50", "90", "99")))
for line in wrk.splitlines():
    if "Socket errors" in line or "Non-2xx" in line:
        print("errors       " + line.strip())
print(f"split        (admin API, strategy {after.get('strategy', '?')}; delta over the run)")
rows = [(b["url"], b.get("total_requests", 0) - before.get(b["url"], 0), b.get("weight"))
        for b in after["backends"]]
n = sum(r[1] for r in rows) or 1
for url, count, weight in rows:
    print(f"  {url:<28} weight {weight!s:>3}  {count:>10,}  {100 * count / n:5.1f}%")
EOF
