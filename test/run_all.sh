#!/bin/bash
# Build, install and run every test of job_queue: pg_regress and isolation
# tests on temporary instances, then the TAP tests.  Run as root on a fresh
# Debian machine it first installs what it needs; servers always run as an
# unprivileged user (postgres), on a copy of the tree.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
	"$src/test/install_deps.sh"
	make -C "$src" -s install
	work=$(mktemp -d /tmp/job_queue_test.XXXXXX)
	cp -a "$src/." "$work/"
	chown -R postgres "$work"
	exec runuser -u postgres -- "$work/test/run_all.sh"
fi

cd "$src"
# regression and isolation tests on temporary instances, then TAP tests
status=0
make -s installcheck PROVE_FLAGS="--timer" || status=$?
for f in test/out/regression.diffs test/out_isolation/regression.diffs; do
	if [ -s "$f" ]; then
		cat "$f"
	fi
done
# failover under load with Patroni and etcd
test/failover/run.sh || status=$?
exit $status
