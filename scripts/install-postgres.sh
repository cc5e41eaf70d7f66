#!/usr/bin/env bash
# PostgreSQL for the store tests (they start throwaway clusters of their own with initdb and pg_ctl): Debian's
# package, installed when missing and when this runs as root. Elsewhere the tests say how to install it.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing PostgreSQL (Debian package) for the store tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "PostgreSQL is not installed and cannot be installed from here (not root, or no apt-get): the store tests will fail saying so. Install it with: sudo apt-get install -y postgresql" >&2
