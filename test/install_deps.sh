#!/bin/bash
# Install what job_queue needs to build and test on Debian: PostgreSQL 15
# server and headers, a compiler, the Perl modules of the TAP tests,
# PgBouncer for the test of a pooler in front of the server, and Patroni
# with etcd for the failover test.
set -euo pipefail
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib build-essential libipc-run-perl pgbouncer patroni python3-etcd etcd-server"
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
