#!/usr/bin/env bash
# Installs the servers spendcap's tests and `make dev` run, when they are missing:
# PostgreSQL 15 (server and client), valkey-server 8 (from bookworm-backports on Debian 12) and
# pgbouncer (the pooler tests run the Go binding through it in transaction mode) and chromium
# (the console's tests drive it headless).
# Nothing is started: the test harness and `make dev` start their own servers.
set -euo pipefail

have_pg() {
  [ -n "${SPENDCAP_PG_BIN:-}" ] && [ -x "$SPENDCAP_PG_BIN/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null && command -v pg_dump >/dev/null
}
have_valkey() {
  [ -n "${SPENDCAP_VALKEY_SERVER:-}" ] && [ -x "$SPENDCAP_VALKEY_SERVER" ] && return 0
  command -v valkey-server >/dev/null
}
have_pgbouncer() {
  [ -n "${SPENDCAP_PGBOUNCER:-}" ] && [ -x "$SPENDCAP_PGBOUNCER" ] && return 0
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]
}
have_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null
}
have_all() { have_pg && have_valkey && have_pgbouncer && have_chromium; }

if have_all; then
  echo "deps: postgres, valkey-server, pgbouncer and chromium are installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  have_pg || echo "deps: missing PostgreSQL 15 server binaries: apt-get install postgresql-15 (or set SPENDCAP_PG_BIN)" >&2
  have_valkey || echo "deps: missing valkey-server 8: apt-get install -t bookworm-backports valkey-server (or set SPENDCAP_VALKEY_SERVER)" >&2
  have_pgbouncer || echo "deps: missing pgbouncer: apt-get install pgbouncer (or set SPENDCAP_PGBOUNCER)" >&2
  have_chromium || echo "deps: missing chromium (the console's browser tests): apt-get install chromium" >&2
  echo "deps: cannot install them here (needs root and apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start services: the harness runs its own servers.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

. /etc/os-release
packages=()
target=()
if ! have_valkey && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deps: adding bookworm-backports to the apt sources"
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  target=(-t bookworm-backports)
fi
apt-get update -qq
if ! have_valkey; then
  echo "deps: installing valkey-server"
  apt-get install -y -qq "${target[@]}" valkey-server >/dev/null
fi
if ! have_pg; then
  echo "deps: installing postgresql-15"
  apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
fi
if ! have_pgbouncer; then
  echo "deps: installing pgbouncer"
  apt-get install -y -qq pgbouncer >/dev/null
fi
if ! have_chromium; then
  echo "deps: installing chromium (headless, for the console's tests)"
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
have_all
echo "deps: postgres, valkey-server, pgbouncer and chromium are installed"
