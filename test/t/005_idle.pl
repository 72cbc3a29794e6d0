# With nothing to do, the scheduler and executors of a database run no SQL
# and commit no transaction: after some jobs (delayed, retried, failed) have
# run, pg_stat_statements sees no statement from them for more than ten
# seconds, their activity in pg_stat_activity stays unchanged, no xid is
# used, and pg_stat_database counts no commit in their database (which
# requires their statistics to reach pg_stat while they run).  Then they
# still pick up a new job at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(sleep time);

# every wait here is for something due within a few seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 10
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $idle_seconds = 11;

# autovacuum off: nothing but the job_queue workers touches database jobs
my $node = job_queue_node('idle', preload => 'job_queue,pg_stat_statements', conf => q{
pg_stat_statements.track = 'all'
compute_query_id = on
autovacuum = off
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '200ms'
});

# the test watches database jobs from database postgres only, so that none
# of its own statements or transactions counts against jobs
$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
$node->safe_psql('postgres', 'CREATE DATABASE jobs');
$node->safe_psql('jobs', 'CREATE EXTENSION job_queue; CREATE TABLE done (n int)');
my $jobs_oid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'jobs'");

my $workers_filter = q{
	backend_type IN ('job_queue scheduler', 'job_queue executor', 'job_queue shell executor')
	AND datname = 'jobs'};

# wait until the scheduler and its executors (those the jobs needed) are
# up and all waiting for work
sub wait_idle_workers
{
	my ($what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT count(*) FILTER (WHERE backend_type = 'job_queue scheduler'
								AND state = 'idle')
			   || '/' ||
			   (count(*) FILTER (WHERE backend_type LIKE 'job_queue %executor'
								 AND state = 'idle' AND wait_event = 'Extension') > 0
				AND count(*) FILTER (WHERE backend_type LIKE 'job_queue %executor'
									 AND (state <> 'idle' OR wait_event <> 'Extension')) = 0)
		FROM pg_stat_activity WHERE $workers_filter},
			'1/true'),
		"scheduler and its executors idle $what");
	# let whatever woke them last finish
	sleep(1);
}

sub worker_activity
{
	return $node->safe_psql(
		'postgres', qq{
		SELECT string_agg(pid || ' ' || backend_type || ' ' || state || ' '
						  || state_change || ' ' || coalesce(wait_event, ''),
						  E'\n' ORDER BY pid)
		FROM pg_stat_activity WHERE $workers_filter});
}

sub worker_pids
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE $workers_filter"
	);
}

sub xact_commit
{
	return $node->safe_psql('postgres',
		"SELECT xact_commit FROM pg_stat_database WHERE datname = 'jobs'");
}

sub next_xid
{
	return $node->safe_psql('postgres',
		'SELECT pg_snapshot_xmax(pg_current_snapshot())');
}

sub statements_in_jobs
{
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = $jobs_oid"
	);
}

# executors start for work: at first, only the scheduler has been there
ok( $node->poll_query_until(
		'jobs', "SELECT count(*) FROM jq_executors WHERE datname = 'jobs'", '1'),
	'the scheduler found the extension');

# some work: ready jobs, a delayed one, one that fails after retries and one
# that succeeds after a retry
$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
$node->safe_psql(
	'jobs', q{
	CREATE SEQUENCE flaky_seq;
	SELECT jq_enqueue(format('INSERT INTO done VALUES (%s)', n)) FROM generate_series(1, 20) n;
	SELECT jq_enqueue('INSERT INTO done VALUES (21)', run_at => now() + interval '1 second');
	SELECT jq_enqueue('SELECT 1/0', max_attempts => 3);
	SELECT jq_enqueue('SELECT 1 / CASE WHEN nextval(''flaky_seq'') < 2 THEN 0 ELSE 1 END');
});
ok( $node->poll_query_until(
		'jobs',
		"SELECT string_agg(state || ' ' || count, ',' ORDER BY state) FROM (SELECT state, count(*) FROM jq_jobs GROUP BY state) s",
		'failed 1,succeeded 22'),
	'the jobs ran to completion');
is($node->safe_psql('jobs', 'SELECT count(*) FROM done'), '21',
	'every job took effect');

# the workers' statements are visible to pg_stat_statements: the executors'
# claims and the scheduler's ticks
is( $node->safe_psql(
		'postgres', qq{
	SELECT bool_or(query LIKE '%SKIP LOCKED%') || ' ' || bool_or(query LIKE '%jq._tick()%')
	FROM pg_stat_statements WHERE dbid = $jobs_oid}),
	'true true',
	'pg_stat_statements sees the workers\' statements');

# their work must also reach the cumulative statistics while they run, or
# the pg_stat_database check below could not see it: only executors delete
# from jq.job, once per finished job (one more job, over a second later,
# lets a report held back by the one-second minimum go out)
sleep(1.1);
my $last = $node->safe_psql('jobs', "SELECT jq_enqueue('SELECT 1')");
ok(wait_for_job_state($node, 'jobs', $last, 'succeeded'),
	'one more job ran');
ok( $node->poll_query_until(
		'jobs',
		"SELECT n_tup_del >= 24 FROM pg_stat_all_tables WHERE relid = 'jq.job'::regclass"
	),
	'the executors\' work reaches pg_stat while they run');

wait_idle_workers('after the jobs');

# statistics of the work done so far have all been reported
my $commits = xact_commit();
for (my $tries = 0; $tries < 10; $tries++)
{
	sleep(1);
	my $now = xact_commit();
	last if $now == $commits;
	$commits = $now;
}

# the idle window
my $pids = worker_pids();
my $activity = worker_activity();
my $xid = next_xid();
$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
is(statements_in_jobs(), '0 0', 'pg_stat_statements reset');

sleep($idle_seconds);

my $statements = statements_in_jobs();
is($statements, '0 0',
	"no statement ran in database jobs for $idle_seconds seconds")
  or diag(
	$node->safe_psql(
		'postgres',
		"SELECT calls || ' ' || query FROM pg_stat_statements WHERE dbid = $jobs_oid ORDER BY calls DESC LIMIT 10"
	));
is(worker_pids(), $pids, 'the same workers are still there');
is(worker_activity(), $activity,
	'their activity (state, state_change, wait event) did not change');
is(next_xid(), $xid, 'no transaction id was used');
is(xact_commit(), $commits,
	'pg_stat_database: no commit counted in database jobs');

# idle workers still answer at once
my $start = time;
my $id = $node->safe_psql('jobs', "SELECT jq_enqueue('INSERT INTO done VALUES (100)')");
ok(wait_for_job_state($node, 'jobs', $id, 'succeeded'),
	'a new job ran');
my $elapsed = time - $start;
cmp_ok($elapsed, '<', 2,
	'it ran without waiting for a poll (took ' . sprintf('%.2f', $elapsed) . ' s)');

$node->stop;
done_testing();
