# The throwaway cluster of a benchmark, sourced by test/bench/*.sh after
# "set -euo pipefail":
#
#   bench_as_postgres "$@"    as root, run the script again as postgres
#   bench_cluster NAME        $TMP, a new directory /tmp/NAME.XXXXXX removed
#                             at exit with the cluster in it ($PGDATA), and
#                             psql's environment for it (PGHOST: a socket in
#                             $TMP, PGPORT: a free loopback port, PGUSER);
#                             a script with more to clean up at exit sets its
#                             own EXIT trap, which calls bench_finish
#   bench_start [LINE...]     initdb, the postgresql.conf lines given (at
#                             least shared_preload_libraries), start
#   sql ARGS...               psql -At on the cluster, stopping at errors
#   await QUERY [S]           poll QUERY every $AWAIT_POLL seconds (0.05)
#                             until it returns t; exit after S seconds (1800)
#   free_port                 a free TCP port on the loopback interface

BINDIR=$(pg_config --bindir)
AWAIT_POLL=0.05

bench_as_postgres()
{
	# PostgreSQL refuses to run as root
	[ "$(id -u)" != 0 ] || exec runuser -u postgres -- bash "$(readlink -f "$0")" "$@"
}

free_port()
{
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_cluster()
{
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	PGDATA=$TMP/data
	PGPORT=$(free_port)
	export PGHOST=$TMP PGPORT PGUSER=postgres
	trap bench_finish EXIT
}

bench_finish()
{
	if [ -f "$PGDATA/postmaster.pid" ]; then
		"$BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
}

bench_start()
{
	"$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust --no-instructions >"$TMP/initdb.log" 2>&1
	{
		echo "port = $PGPORT"
		echo "unix_socket_directories = '$TMP'"
		printf '%s\n' "$@"
	} >>"$PGDATA/postgresql.conf"
	"$BINDIR/pg_ctl" -D "$PGDATA" -l "$TMP/server.log" -w start >/dev/null
}

sql()
{
	"$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

await()
{
	local give_up=$(( $(date +%s) + ${2:-1800} ))
	while [ "$(sql -c "$1")" != t ]; do
		if [ "$(date +%s)" -gt "$give_up" ]; then
			echo "gave up waiting for: $1" >&2
			exit 1
		fi
		sleep "$AWAIT_POLL"
	done
}
