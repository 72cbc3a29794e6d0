# Ten databases with the extension and max_worker_processes = 8: fewer
# worker slots than the ten schedulers alone would need.  Every job of every
# database finishes, SQL and shell, databases taking turns; afterwards, idle
# for ten seconds, the workers run no statement in any database, and no
# database waits.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(sleep);

my @dbs = map { "db$_" } 1 .. 10;

my $node = job_queue_node('pool_ten', preload => 'job_queue,pg_stat_statements', conf => q{
max_worker_processes = 8
pg_stat_statements.track = 'all'
compute_query_id = on
});
$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');

my $dir = $node->basedir . '/shell';
mkdir $dir or die "mkdir $dir: $!";

for my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION job_queue; CREATE TABLE done (n int)');
}

# all at once: 100 SQL jobs and 2 shell jobs per database
for my $db (@dbs)
{
	$node->safe_psql($db, q{
		SELECT jq_enqueue(format('INSERT INTO done VALUES (%s); SELECT pg_sleep(0.002)', n))
		FROM generate_series(1, 100) n});
	$node->safe_psql($db,
		"SELECT jq_enqueue_shell(argv => ARRAY['touch', '$dir/$db.' || n]) FROM generate_series(1, 2) n"
	);
}

for my $db (@dbs)
{
	ok( $node->poll_query_until(
			$db,
			"SELECT count(*) FILTER (WHERE state = 'succeeded') || '/' || count(*) FROM jq_jobs",
			'102/102'),
		"$db: all 102 jobs succeeded");
	is($node->safe_psql($db, q{SELECT count(*) || ' / ' || count(DISTINCT n) FROM done}),
		'100 / 100', "$db: each SQL job took effect once");
	is(scalar(grep { -e "$dir/$db.$_" } 1 .. 2), 2, "$db: both shell jobs ran");
}

# nothing to do: no database waits, and no worker runs a statement
ok( $node->poll_query_until(
		'db1', 'SELECT count(*) FROM jq_executors WHERE wanted > 0 OR waiting_since IS NOT NULL',
		'0'),
	'no database waits for an executor');
is($node->safe_psql('db1', 'SELECT count(*) FROM jq_executors'), '10',
	'jq_executors has a row per database');
# let the last wakeups settle
sleep(1);
$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
sleep(10);
is( $node->safe_psql(
		'postgres', q{
	SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s
	JOIN pg_database d ON d.oid = s.dbid WHERE d.datname LIKE 'db%'}),
	'0',
	'idle for 10 s: no statement in any of the ten databases');

# they still run new work at once
$node->safe_psql('db7', 'SELECT jq_enqueue($$INSERT INTO done VALUES (1000)$$)');
ok($node->poll_query_until('db7', 'SELECT count(*) FROM done WHERE n = 1000', '1'),
	'a new job runs afterwards');

$node->stop;
done_testing();
