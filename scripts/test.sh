#!/usr/bin/env bash
# Runs every test. Installs what the tests need first: the Python interop peers in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python with venv for the interop peers; independent tools the local-provider tests compare against.
need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)
command -v ip >/dev/null || need+=(iproute2)
command -v uptime >/dev/null || need+=(procps)
command -v hostname >/dev/null || need+=(hostname)
# OpenSSL headers for the native-tls feature (--all-features builds it).
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} for the tests" >&2
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pypsrp, spnego, impacket, aiowmi' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
fi
export CIMRUN_PYTHON="$PWD/.venv/bin/python"
cargo test --locked --all-features --all-targets "$@"
