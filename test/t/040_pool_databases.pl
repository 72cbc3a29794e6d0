# Three databases with the extension and PostgreSQL's default
# max_worker_processes (8): with no setting changed, all three run their SQL
# and shell jobs; a poison job that kills its executor again and again in
# one database does not stop the other two, nor that database's own healthy
# jobs; after an immediate shutdown with jobs in flight in all three, every
# job ends succeeded with its effect committed once.  jq_executors shows
# each database's executors.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my @dbs = qw(a b c);

# job_queue_node raises max_worker_processes; this test needs the default
my $node = job_queue_node('pool_databases', conf => q{
max_worker_processes = 8
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '200ms'
});
is($node->safe_psql('postgres', 'SHOW max_worker_processes'), '8',
	'max_worker_processes is PostgreSQL\'s default');

my $dir = $node->basedir . '/shell';
mkdir $dir or die "mkdir $dir: $!";

for my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION job_queue;
		CREATE TABLE done (n int, tag text);
	});
}

# n SQL jobs inserting (n, tag) into done, enqueued in one transaction
sub enqueue_sql
{
	my ($db, $tag, $from, $to, $sleep) = @_;
	$node->safe_psql($db, qq{
		SELECT jq_enqueue(format('INSERT INTO done VALUES (%s, %L); SELECT pg_sleep($sleep)',
								 n, '$tag'))
		FROM generate_series($from, $to) n});
}

my $states_sql = q{
	SELECT string_agg(state || ' ' || n, ',' ORDER BY state)
	FROM (SELECT state, count(*) n FROM jq_jobs GROUP BY state) s};

# 1. SQL and shell jobs in all three databases at once
for my $db (@dbs)
{
	enqueue_sql($db, 'first', 1, 30, 0.01);
	$node->safe_psql($db,
		"SELECT jq_enqueue_shell(argv => ARRAY['touch', '$dir/$db.' || n]) FROM generate_series(1, 3) n"
	);
}
for my $db (@dbs)
{
	ok($node->poll_query_until($db, $states_sql, 'succeeded 33'),
		"$db: its 30 SQL and 3 shell jobs succeeded");
	is($node->safe_psql($db, q{SELECT count(*) || ' / ' || count(DISTINCT n) FROM done}),
		'30 / 30', "$db: each SQL job took effect once");
	is(scalar(grep { -e "$dir/$db.$_" } 1 .. 3), 3, "$db: each shell job ran");
}
is( $node->safe_psql(
		'a', q{
	SELECT string_agg(datname, ',' ORDER BY datname) FROM jq_executors
	WHERE sql_running + sql_idle + shell_running + shell_idle + wanted >= 0}),
	'a,b,c',
	'jq_executors shows the three databases to a superuser');

# a role that is not a member of jq_admin sees its own database only
$node->safe_psql('a', 'CREATE ROLE plain LOGIN');
is( $node->safe_psql(
		'b', "SET ROLE plain; SELECT string_agg(datname, ',') FROM jq_executors"),
	'b', 'a plain role sees the row of its own database only');

# 2. a poison job in a kills its executor again and again while b and c
# run jobs, and a's healthy jobs wait behind it
my $log_offset = -s $node->logfile;
my $poison = $node->safe_psql('a', q{
	SELECT jq_enqueue('SELECT pg_terminate_backend(pg_backend_pid())', max_attempts => 4)});
enqueue_sql('a', 'after_poison', 101, 120, 0);
enqueue_sql($_, 'beside_poison', 101, 300, 0.005) for qw(b c);
ok(wait_for_job_state($node, 'a', $poison, 'failed'),
	'a: the poison job ends failed')
  or diag($node->safe_psql('a', qq{
	SELECT concat_ws(E'\n',
		(SELECT string_agg(state || ' ' || attempts || ' ' || run_at, ' ') FROM jq_jobs WHERE id = $poison),
		(SELECT string_agg(p::text, E'\n') FROM jq_executors p),
		(SELECT string_agg(concat_ws(' ', backend_type, datname, state), E'\n')
		 FROM pg_stat_activity WHERE backend_type LIKE 'job_queue%'))}));
is($node->safe_psql('a', "SELECT attempts FROM jq_jobs WHERE id = $poison"),
	'4', 'a: it used its four attempts');
for my $db (@dbs)
{
	my $n = $db eq 'a' ? 20 : 200;
	ok( $node->poll_query_until(
			$db,
			"SELECT count(*) FROM done WHERE tag IN ('after_poison', 'beside_poison')",
			$n),
		"$db: its $n jobs beside the poison job ran");
}
# a's executor slot went back to a each time, not to b or c
ok( $node->poll_query_until(
		'a', q{
	SELECT count(*) FROM jq_jobs WHERE state <> 'succeeded' AND id <> } . $poison,
		'0'),
	'a: every healthy job succeeded');

# the poison job and the jobs after it ran within the same minute: a was
# not left without an executor while b and c had theirs
ok( $node->safe_psql(
		'a', q{
	SELECT max(finished_at) - min(created_at) < interval '60 seconds' FROM jq_jobs
	WHERE command LIKE '%after_poison%'}) eq 't',
	'a: its jobs after the poison job did not wait long');

# 3. pg_ctl -m immediate with jobs in flight in all three databases
enqueue_sql($_, 'crash', 1001, 1300, 0.005) for @dbs;
for my $db (@dbs)
{
	ok( $node->poll_query_until(
			$db, "SELECT count(*) > 0 FROM done WHERE tag = 'crash'", 't'),
		"$db: crash jobs are running");
}
$node->stop('immediate');
$node->start;
for my $db (@dbs)
{
	ok( $node->poll_query_until(
			$db,
			"SELECT count(*) FROM jq_jobs WHERE command LIKE '%''crash''%' AND state = 'succeeded'",
			'300'),
		"$db: all 300 jobs succeeded after the restart");
	is( $node->safe_psql(
			$db,
			"SELECT count(*) || ' / ' || count(DISTINCT n) FROM done WHERE tag = 'crash'"),
		'300 / 300',
		"$db: each took effect once");
}

$node->stop;
done_testing();
