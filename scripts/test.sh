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
# A throwaway MIT Kerberos realm for the Kerberos interop tests (KDC, kdb5_util, kadmin.local),
# and the headers python-gssapi builds against.
[ -x /usr/sbin/krb5kdc ] || need+=(krb5-kdc)
[ -x /usr/sbin/kadmin.local ] || need+=(krb5-admin-server)
command -v krb5-config >/dev/null || need+=(libkrb5-dev)
# gssapi and krb5 have no Linux wheels: pip compiles them, which needs a C compiler and Python.h.
command -v cc >/dev/null || need+=(gcc)
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null || need+=(python3-dev)
# OpenSSL headers for the native-tls feature (--all-features builds it).
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} for the tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pypsrp, spnego, impacket, aiowmi, gssapi, krb5' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
fi
export CIMRUN_PYTHON="$PWD/.venv/bin/python"
cargo test --locked --all-features --all-targets "$@"
