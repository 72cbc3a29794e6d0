# job_queue through PgBouncer in transaction pooling mode, in front of a
# server that runs nothing itself (jq.execute_in_server = off):
#
#  1. every form of enqueue, in its own transaction or several in one, and
#     a rollback that leaves nothing; jq_dequeue, jq_heartbeat, jq_complete
#     and jq_fail, each statement in its own pooled transaction;
#  2. jq_worker with --dsn through the pooler and --listen-dsn straight to
#     the server: it drains SQL and shell jobs (each SQL job's effect
#     applied once, no session setting of one job seen by the next) and an
#     idle worker is woken by the notification of a job enqueued through
#     the pooler, long before its --recheck;
#  3. jq_worker with --no-listen, only through the pooler, finds its jobs
#     every --recheck.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use IPC::Run;
use Time::HiRes qw(time);

$PostgreSQL::Test::Utils::timeout_default = 120
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $pgbouncer = '/usr/sbin/pgbouncer';
BAIL_OUT("$pgbouncer not found: install Debian's pgbouncer (test/install_deps.sh)")
  unless -x $pgbouncer;

my $node = job_queue_node('pooled', conf => "jq.execute_in_server = off\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION job_queue;
CREATE TABLE effects (job bigint PRIMARY KEY, seen_timeout text NOT NULL);
});

# PgBouncer on a free loopback port, three server connections for every
# client, reaching the server over its Unix socket
my $dir = PostgreSQL::Test::Utils::tempdir;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = getpwuid($<);
my $server = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"$user" ""\n});
PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", qq{
[databases]
postgres = $server

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
logfile = $PostgreSQL::Test::Utils::log_path/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
my $bouncer = fork() // die "could not fork: $!";
if ($bouncer == 0)
{
	exec($pgbouncer, '-q', "$dir/pgbouncer.ini") or die "could not run pgbouncer: $!";
}
my @workers;
END
{
	kill 'KILL', @workers if @workers;
	kill 'TERM', $bouncer if $bouncer;
}

my $pooled = "host=127.0.0.1 port=$port dbname=postgres";
my $direct = $node->connstr('postgres');

# psql through the pooler: the output, or die
sub pooled
{
	my ($sql) = @_;
	my ($out, $err);
	IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $pooled, '-c', $sql ],
		'>', \$out, '2>', \$err)
	  or die "psql through the pooler failed: $err\n$sql";
	chomp $out;
	return $out;
}

sub direct
{
	return $node->safe_psql('postgres', shift);
}

ok(wait_until(sub { eval { pooled('SELECT 1') } }), 'pgbouncer accepts connections');

# 1. the SQL API, each call in its own transaction unless said otherwise
my $sql_job = pooled(q{SELECT jq_enqueue('SELECT 1', queue => 'api', payload => '{"n": 1}')});
my $shell_job = pooled(q{SELECT jq_enqueue_shell(argv => ARRAY['true'], queue => 'api')});
is(pooled(q{SELECT cardinality(jq_enqueue_bulk(ARRAY['SELECT 2', 'SELECT 3'], queue => 'api'))}),
	'2', 'jq_enqueue_bulk');
is(pooled(q{SELECT count(*) FROM jq_enqueue_group('[
	{"name": "a", "command": "SELECT 4", "queue": "api"},
	{"name": "b", "command": "SELECT 5", "queue": "api", "depends_on": ["a"]}]')}),
	'2', 'jq_enqueue_group');
my $unique = pooled(q{SELECT jq_enqueue('SELECT 6', queue => 'api', unique_key => 'u1')});
is(pooled(q{SELECT jq_enqueue('SELECT 6', queue => 'api', unique_key => 'u1')}),
	$unique, 'a unique key finds the job enqueued in another pooled transaction');
pooled(q{BEGIN;
SELECT jq_enqueue('SELECT 7', queue => 'api');
SELECT jq_enqueue('SELECT 8', queue => 'api', depends_on => ARRAY[currval('jq.job_id_seq')]);
COMMIT});
pooled(q{BEGIN; SELECT jq_enqueue('SELECT 9', queue => 'api'); ROLLBACK});
is(direct(q{SELECT count(*) FROM jq_jobs WHERE queue = 'api'}), '9',
	'every enqueue is there, the rolled back one is not');
is(direct(q{SELECT count(*) FROM jq_jobs WHERE queue = 'api' AND state = 'waiting'}), '2',
	'dependants wait for their dependencies');

my @claimed = split /\n/, pooled(q{
	SELECT id || ',' || attempt FROM jq_dequeue('api', max_jobs => 3, lease => '1 minute',
												 worker => 'pooled-client')});
is(scalar(@claimed), 3, 'jq_dequeue claims through the pooler');
my ($done, $retried, $failed) = map { [ split /,/ ] } @claimed;
is(pooled("SELECT jq_heartbeat($done->[0], lease => '2 minutes', attempt => $done->[1]) IS NOT NULL"),
	't', 'jq_heartbeat');
is(pooled(qq{SELECT jq_complete($done->[0], '{"ok": true}', attempt => $done->[1])}),
	't', 'jq_complete');
is(pooled("SELECT jq_fail($retried->[0], 'try again', attempt => $retried->[1])"),
	't', 'jq_fail with a retry');
is(pooled("SELECT jq_fail($failed->[0], 'no', retry => false, attempt => $failed->[1])"),
	't', 'jq_fail without a retry');
is(direct("SELECT state FROM jq_jobs WHERE id = $done->[0]"), 'succeeded', 'it succeeded');
is(direct("SELECT state FROM jq_jobs WHERE id = $failed->[0]"), 'failed', 'it failed');
like(direct("SELECT state FROM jq_jobs WHERE id = $retried->[0]"), qr/^(retrying|ready)$/,
	'the failed attempt will be retried');
is(pooled("SELECT jq_complete($done->[0], attempt => $done->[1])"), 'f',
	'an outcome recorded twice is refused');
pooled(q{SELECT jq_cancel(id) FROM jq_jobs WHERE queue = 'api' AND state <> ALL ('{succeeded,failed}')});

# 2. jq_worker: claims and outcomes through the pooler, LISTEN straight to
# the server; each SQL job records the statement_timeout it saw, and sets
# one for the next job on the same connection to see if the reset failed
my $jobs = 300;
direct(qq{DO \$\$
BEGIN
	FOR i IN 1..$jobs LOOP
		PERFORM jq_enqueue(format('INSERT INTO effects VALUES (%s, current_setting(''statement_timeout''));
								   SET statement_timeout = ''42s''', -i), queue => 'work');
	END LOOP;
END
\$\$});
direct(q{SELECT jq_enqueue_shell(command => 'true', queue => 'work') FROM generate_series(1, 100)});
push @workers, start_jq_worker('pooled', '--dsn', $pooled, '--listen-dsn', $direct,
	'--kinds', 'shell,sql', '--concurrency', '4', '--queue', 'work', '--recheck', '600');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 400 FROM jq_jobs WHERE queue = 'work' AND state = 'succeeded'}),
	'jq_worker ran every job through the pooler');
is(direct(q{SELECT count(*) FROM effects}), $jobs, 'each SQL job took effect once');
is(direct(q{SELECT count(*) FROM effects WHERE seen_timeout <> '0'}), '0',
	'no job saw the setting a job before it left on its connection');
is(direct(q{SELECT count(DISTINCT lease_owner) || ' ' || min(lease_owner)
			FROM jq_jobs WHERE queue = 'work'}), '1 pooled', 'the worker named itself');
# an idle worker is woken by the notification of a job enqueued through the
# pooler; its --recheck (600 s) would come much later
my $t0 = time;
my $woken = pooled(q{SELECT jq_enqueue_shell(command => 'true', queue => 'work')});
ok(wait_for_job_state($node, 'postgres', $woken, 'succeeded'),
	'a job enqueued through the pooler woke the listening worker');
cmp_ok(time - $t0, '<', 60, 'long before --recheck');
like(jq_worker_log('pooled'), qr/listening for new jobs on database "postgres"/,
	'the worker listens on its own connection');

# 3. no LISTEN at all: the worker looks every --recheck
direct(q{SELECT jq_enqueue_shell(command => 'true', queue => 'nolisten')
		 FROM generate_series(1, 50)});
push @workers, start_jq_worker('polling', '--dsn', $pooled, '--no-listen', '--recheck', '0.2',
	'--concurrency', '2', '--queue', 'nolisten');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 50 FROM jq_jobs WHERE queue = 'nolisten' AND state = 'succeeded'}),
	'a worker without LISTEN drains its queue');
my $late = pooled(q{SELECT jq_enqueue_shell(command => 'true', queue => 'nolisten')});
ok(wait_for_job_state($node, 'postgres', $late, 'succeeded'),
	'and finds a later job at its next recheck');
unlike(jq_worker_log('polling'), qr/listening|failed/, 'it neither listened nor failed');

kill 'TERM', @workers;
is(wait_child($_), 0, 'jq_worker stopped cleanly') for @workers;
@workers = ();

done_testing();
