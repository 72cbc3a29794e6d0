#!/bin/bash
# Install what job_queue needs to build and test on Debian: PostgreSQL 15
# server and headers, a compiler, the Perl modules of the TAP tests, and the
# Prometheus parser that checks the output of jq_metrics; for jq_dashboard,
# libmicrohttpd, and for its browser test chromium and (from the npm
# registry) playwright-core; PgBouncer for the test of a pooler in front of
# the server, and Patroni with etcd for the failover test.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib build-essential libipc-run-perl python3-prometheus-client"
pkgs="$pkgs libmicrohttpd-dev chromium"
pkgs="$pkgs pgbouncer patroni python3-etcd etcd-server"
command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi
# Debian's own cluster is not needed: job_queue's scripts start their own
command -v pg_config >/dev/null || { echo "pg_config not found" >&2; exit 1; }
# the browser test's Node.js packages, as package-lock.json pins them
if [ ! -d "$src/test/browser/node_modules/playwright-core" ]; then
	(cd "$src/test/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
