#!/bin/bash
# Run TAP tests against the installed extension, as an unprivileged user
# when started as root: test/tap_one.sh test/t/001_lifecycle.pl [...]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
	work=$(mktemp -d /tmp/job_queue_tap.XXXXXX)
	cp -a "$src/." "$work/"
	chown -R postgres "$work"
	cd "$work"
	exec runuser -u postgres -- make -s installcheck REGRESS= ISOLATION= PROVE_TESTS="$*" PROVE_FLAGS=-v
fi
cd "$src"
exec make -s installcheck REGRESS= ISOLATION= PROVE_TESTS="$*" PROVE_FLAGS=-v
