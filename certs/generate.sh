#!/usr/bin/env bash
# Makes a self-signed certificate and key for trying ferrule's TLS locally: CN=localhost,
# subjectAltName DNS:localhost and IP:127.0.0.1, RSA-2048, valid 365 days. Never use it for
# anything real. The pair is not committed (certs/*.pem is in .gitignore).
#
# Usage: certs/generate.sh [--force] [DIR]
#   DIR      where to write cert.pem and key.pem (default: the folder of this script, certs/)
#   --force  overwrite an existing cert.pem / key.pem (without it the script refuses)
set -euo pipefail

usage() { sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//'; }

force=0
dir=
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "generate.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      [[ -z $dir ]] || { echo "generate.sh: one folder at most" >&2; exit 2; }
      dir=$arg
      ;;
  esac
done
dir=${dir:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
cert=$dir/cert.pem
key=$dir/key.pem

if ((!force)); then
  for f in "$cert" "$key"; do
    if [[ -e $f ]]; then
      echo "generate.sh: $f exists; pass --force to overwrite it" >&2
      exit 1
    fi
  done
fi
command -v openssl >/dev/null || { echo "generate.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"

# Written beside the targets first and renamed, so a failure leaves no half-made pair.
umask 077
tmp_cert=$(mktemp "$dir/.cert.XXXXXX")
tmp_key=$(mktemp "$dir/.key.XXXXXX")
trap 'rm -f "$tmp_cert" "$tmp_key"' EXIT
if ! out=$(openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tmp_key" -out "$tmp_cert" 2>&1); then
  echo "generate.sh: openssl failed: $out" >&2
  exit 1
fi
chmod 600 "$tmp_key"
chmod 644 "$tmp_cert"
mv -f "$tmp_key" "$key"
mv -f "$tmp_cert" "$cert"
trap - EXIT
echo "wrote $cert and $key (self-signed, CN=localhost, valid 365 days)"
