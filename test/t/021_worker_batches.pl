# jq_worker runs SQL jobs in batches (jq_run_sql_many), each batch's
# effects and outcomes committed together:
#
#  1. kill -9 of the worker while a batch runs: the batch's effects and
#     outcomes roll back together, the jobs run again elsewhere once their
#     leases expire, and every job's effect is there exactly once;
#  2. SIGTERM while a batch runs: the batch goes on during the shutdown
#     grace, then the running job is cancelled (a failed attempt, retried),
#     the jobs of the batch that had not started are given back (ready, no
#     attempt counted), what ran before commits, and the worker exits 0;
#  3. a job that runs SET CONSTRAINTS ends its batch's transaction early;
#     the rest of the batch runs in the next one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

$PostgreSQL::Test::Utils::timeout_default = 120
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $node = job_queue_node('batches', conf => q{
jq.execute_in_server = off
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '100ms'
});
$node->safe_psql('postgres', q{
CREATE EXTENSION job_queue;
CREATE TABLE effects (job integer NOT NULL);
});
my $dsn = $node->connstr('postgres');
my %workers;
END
{
	kill 'KILL', values %workers;
}

sub query { return $node->safe_psql('postgres', shift); }

sub start_worker
{
	my ($name, @args) = @_;
	$workers{$name} = start_jq_worker($name, '--dsn', $dsn, '--kinds', 'sql', '--recheck', '1', @args);
}

# the backends running a batch for a worker
my $batch_running = q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE query LIKE '%jq_run_sql_many%' AND state = 'active' AND pid <> pg_backend_pid()};

###########################################################################
# 1. kill -9 mid-batch
###########################################################################

# job 150 takes an advisory lock, for the test to see it run, and sleeps on
# its first attempt only
query(q{CREATE SEQUENCE first_try});
query(q{SELECT jq_enqueue(CASE WHEN i = 150
		THEN 'INSERT INTO effects VALUES (150); SELECT pg_advisory_xact_lock(4242); '
			 || 'SELECT pg_sleep(CASE WHEN nextval(''first_try'') = 1 THEN 30 ELSE 0 END)'
		ELSE format('INSERT INTO effects VALUES (%s); SELECT pg_sleep(0.01)', i) END,
		queue => 'kill', priority => i)
		FROM generate_series(1, 300) i});
start_worker('doomed', '--queue', 'kill', '--concurrency', '2', '--batch-size', '20', '--lease', '2');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242}),
	'a batch is running job 150');
is(query(q{SELECT count(*) >= 40 FROM jq_jobs WHERE queue = 'kill' AND state = 'succeeded'}), 't',
	'batches before it committed');
kill 'KILL', delete $workers{doomed};
# the server finds out when it next talks to the client: end the batches now,
# so that they roll back
query(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query LIKE '%jq_run_sql_many%' AND pid <> pg_backend_pid()});
my $rolled_back = query(q{SELECT count(*) FROM jq_jobs WHERE queue = 'kill' AND state = 'running'});
cmp_ok($rolled_back, '>', 0, "jobs of the killed worker's batches are still running: $rolled_back");
is(query(q{SELECT count(*) FROM effects WHERE job = 150}), 0, 'nothing of the batch of job 150 committed');
start_worker('heir', '--queue', 'kill', '--concurrency', '2', '--batch-size', '20', '--lease', '2');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 300 FROM jq_jobs WHERE queue = 'kill' AND state = 'succeeded'}),
	'every job succeeded');
is(query(q{SELECT count(*) || ' ' || count(DISTINCT job) FROM effects}), '300 300',
	'each job took effect exactly once');
is(query(q{SELECT count(*) > 0 FROM jq_jobs WHERE queue = 'kill' AND attempts = 2}), 't',
	'the jobs of the batches cut short ran again, in a second attempt');
is(query(q{SELECT count(*) FROM jq_jobs WHERE queue = 'kill' AND attempts > 2}), 0,
	'none ran more than twice');
kill 'TERM', $workers{heir};
is(wait_child(delete $workers{heir}), 0, 'the other worker stopped');

###########################################################################
# 2. SIGTERM during a batch
###########################################################################

query(q{TRUNCATE effects});
query(q{SELECT jq_enqueue(format('INSERT INTO effects VALUES (%s); SELECT pg_sleep(0.2)', i),
						  queue => 'term', priority => i)
		FROM generate_series(1, 30) i});
start_worker('stopped', '--queue', 'term', '--concurrency', '1', '--batch-size', '30',
	'--shutdown-grace', '1', '--kill-grace', '10');
ok($node->poll_query_until('postgres', $batch_running), 'a batch of 30 jobs of 0.2 s is running');
kill 'TERM', $workers{stopped};
is(wait_child(delete $workers{stopped}), 0, 'SIGTERM: the worker exited 0 once its batch was dealt with');
my $log = jq_worker_log('stopped');
like($log, qr/giving back \d+ SQL jobs not run/, 'it gave back the jobs it had not run');
my ($succeeded, $cancelled, $given_back) = split /\|/, query(q{
	SELECT count(*) FILTER (WHERE state = 'succeeded'),
		   count(*) FILTER (WHERE state IN ('ready', 'retrying') AND attempts = 1
							AND last_error LIKE 'canceling statement%'),
		   count(*) FILTER (WHERE state = 'ready' AND attempts = 0)
	FROM jq_jobs WHERE queue = 'term'});
cmp_ok($succeeded, '>', 0, "the jobs that ran during the grace succeeded: $succeeded");
# (a cancel that falls between two jobs stops the batch with none cancelled)
cmp_ok($cancelled, '<=', 1, "the job running at the end of the grace, if any, was cancelled, to be retried: $cancelled");
is($succeeded + $cancelled + $given_back, 30, "the others are ready again, no attempt counted: $given_back");
is(query(q{SELECT count(*) FROM effects}), $succeeded, 'the effects of the jobs that succeeded committed');
start_worker('after', '--queue', 'term', '--concurrency', '2', '--batch-size', '4');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 30 FROM jq_jobs WHERE queue = 'term' AND state = 'succeeded'}),
	'another worker ran the rest');
is(query(q{SELECT count(*) || ' ' || count(DISTINCT job) FROM effects}), '30 30',
	'each job took effect exactly once');

###########################################################################
# 3. a job that changes the transaction
###########################################################################

query(q{CREATE TABLE deferred (k integer PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE)});
query(q{SELECT jq_enqueue(c, queue => 'term', priority => p) FROM (VALUES
	(1, 'INSERT INTO deferred VALUES (1)'),
	(2, 'SET CONSTRAINTS ALL DEFERRED'),
	(3, 'INSERT INTO deferred VALUES (3)'),
	(4, 'INSERT INTO deferred VALUES (4)')) v(p, c)});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 34 FROM jq_jobs WHERE queue = 'term' AND state = 'succeeded'}),
	'a batch with SET CONSTRAINTS in it: every job succeeded');
is(query(q{SELECT string_agg(k::text, ' ' ORDER BY k) FROM deferred}), '1 3 4', 'with its effect');
kill 'TERM', $workers{after};
is(wait_child(delete $workers{after}), 0, 'the worker stopped');

$node->stop;
done_testing();
