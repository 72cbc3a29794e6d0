# A job that kills its executor is charged one attempt per death and ends
# 'failed' after max_attempts instead of looping forever, while the
# scheduler stays up and the jobs claimed alongside it still run exactly
# once.  A job that raises an error is retried with backoff, then fails; one
# that errors only at first succeeds on a retry.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

# every wait here is for something due within a few seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 10
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $node = job_queue_node('poison', conf => q{
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '200ms'
});

$node->safe_psql('postgres', q{
	CREATE EXTENSION job_queue;
	CREATE TABLE done (n int);
	CREATE SEQUENCE flaky_seq;
});

my $workers_query = q{
	SELECT count(*) FILTER (WHERE backend_type = 'job_queue scheduler')
		   || '/' ||
		   count(*) FILTER (WHERE backend_type = 'job_queue executor')
	FROM pg_stat_activity WHERE datname = 'postgres'};
# executors start for work, and stay a while once idle
my $warm_up = $node->safe_psql('postgres', "SELECT jq_enqueue('SELECT 1')");
ok(wait_for_job_state($node, 'postgres', $warm_up, 'succeeded'),
	'a first job ran');
ok($node->poll_query_until('postgres', $workers_query, '1/1'),
	'scheduler and an executor run');
my $scheduler_pid = worker_pid($node, 'scheduler');

# healthy jobs on both sides of a job that terminates its own executor, all
# committed at once so that one executor claims them together
my $log_offset = -s $node->logfile;
my @ids = split /\n/, $node->safe_psql(
	'postgres', q{
	SELECT CASE WHEN n = 6
				THEN jq_enqueue('SELECT pg_terminate_backend(pg_backend_pid())',
								max_attempts => 3)
				ELSE jq_enqueue(format('INSERT INTO done VALUES (%s)', n))
		   END
	FROM generate_series(1, 11) n});
my $poison = splice(@ids, 5, 1);
my @healthy = @ids;
is(scalar(@healthy), 10, 'enqueued a poison job among ten healthy ones');

ok(wait_for_job_state($node, 'postgres', $poison, 'failed'),
	'the poison job ends failed');
is( $node->safe_psql(
		'postgres',
		"SELECT attempts || '/' || max_attempts || ':' || jsonb_array_length(errors) FROM jq_jobs WHERE id = $poison"
	),
	'3/3:3',
	'the poison job used its three attempts, each with an error');
like(
	$node->safe_psql('postgres',
		"SELECT last_error FROM jq_jobs WHERE id = $poison"),
	qr/executor/,
	'its error says its executor died');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) FROM jq_jobs WHERE state = 'succeeded' AND id IN ("
		  . join(',', @healthy) . ')',
		'10'),
	'the ten healthy jobs succeeded');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) || ' / ' || count(DISTINCT n) || ' / ' || sum(n) FROM done}),
	'10 / 10 / 60',
	'each healthy job took effect exactly once');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM jq_jobs WHERE attempts <> 1 AND id IN ("
		  . join(',', @healthy) . ')'),
	'0',
	'the healthy jobs were not charged for the poison job');

# nothing more happens to it: it stays failed and the executors settle
sleep(2);
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts FROM jq_jobs WHERE id = $poison"),
	'failed:3',
	'the poison job is not run again');
my $deaths = () = slurp_file($node->logfile, $log_offset) =~
  /terminating background worker "job_queue executor"/g;
is($deaths, 3, 'the poison job terminated exactly three executors');
is(worker_pid($node, 'scheduler'), $scheduler_pid, 'the scheduler stayed up');
ok($node->poll_query_until('postgres', $workers_query, '1/1'),
	'the scheduler keeps an executor');

# an error is retried with backoff, then the job fails
my $failing = $node->safe_psql('postgres',
	"SELECT jq_enqueue('SELECT 1/0', max_attempts => 4)");
# and a job that errors twice succeeds on its third attempt
my $flaky = $node->safe_psql('postgres',
	"SELECT jq_enqueue('SELECT 42 / CASE WHEN nextval(''flaky_seq'') < 3 THEN 0 ELSE 1 END AS answer')"
);
ok(wait_for_job_state($node, 'postgres', $failing, 'failed'),
	'the erroring job ends failed');
is( $node->safe_psql(
		'postgres', qq{
	SELECT attempts || ':' || last_error || ':' || last_error_code || ':' || last_error_timeout
	FROM jq_jobs WHERE id = $failing}),
	'4:division by zero:22012:false',
	'it used its four attempts and kept the error');
is( $node->safe_psql(
		'postgres', qq{
	SELECT string_agg((e ->> 'attempt') || ' ' || (e ->> 'code'), ',')
	FROM jq_jobs, jsonb_array_elements(errors) e WHERE id = $failing}),
	'1 22012,2 22012,3 22012,4 22012',
	'one error per attempt');
is( $node->safe_psql(
		'postgres', qq{
	SELECT bool_and(b.at - a.at >= interval '20 ms')
	FROM jq_jobs j,
		 LATERAL (SELECT (e ->> 'attempt')::int AS n, (e ->> 'at')::timestamptz AS at
				  FROM jsonb_array_elements(j.errors) e) a
		 JOIN LATERAL (SELECT (e ->> 'attempt')::int AS n, (e ->> 'at')::timestamptz AS at
					   FROM jsonb_array_elements(j.errors) e) b ON b.n = a.n + 1
	WHERE j.id = $failing}),
	't',
	'retries waited for the backoff');
is( $node->safe_psql(
		'postgres',
		"SELECT finished_at - created_at < interval '3 seconds' FROM jq_jobs WHERE id = $failing"
	),
	't',
	'retries waited no longer than jq.retry_backoff_cap');

ok(wait_for_job_state($node, 'postgres', $flaky, 'succeeded'),
	'the flaky job succeeded');
is( $node->safe_psql(
		'postgres', qq{
	SELECT attempts || ':' || jsonb_array_length(errors) || ':' || result::text
	FROM jq_jobs WHERE id = $flaky}),
	'3:2:[{"answer": 42}]',
	'on its third attempt, after two errors');

is(worker_pid($node, 'scheduler'),
	$scheduler_pid, 'the scheduler is still the same process');

$node->stop;
done_testing();
