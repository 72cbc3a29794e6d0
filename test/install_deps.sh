#!/bin/bash
# Install what job_queue needs to build and test on Debian: PostgreSQL 15
# server and headers, a compiler, the Perl modules of the TAP tests, and for
# the Python and Node.js workers psycopg 3, Node.js and npm, and the Node
# package's dependencies (pg, from the npm registry).
set -euo pipefail
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib build-essential libipc-run-perl python3-psycopg"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js and npm from Debian, unless some other package already provides them
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi
(cd "$(dirname "$0")/../node" && npm install --no-audit --no-fund --loglevel=error)
# Debian's own cluster is not needed: job_queue's scripts start their own
command -v pg_config >/dev/null || { echo "pg_config not found" >&2; exit 1; }
