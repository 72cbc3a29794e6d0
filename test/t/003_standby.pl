# On a hot standby no job_queue worker runs and none keeps trying to start
# (the log stays quiet); once the standby is promoted, its launcher and
# scheduler start without a restart and run both the jobs that were pending
# when it was promoted and new ones.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

# every wait here is for something due within a few seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 10
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $primary = job_queue_node('primary', init => { allows_streaming => 1 });

my $workers_query = q{
	SELECT string_agg(backend_type, ',' ORDER BY backend_type)
	FROM pg_stat_activity WHERE backend_type LIKE 'job_queue%'};

$primary->safe_psql('postgres', 'CREATE DATABASE jobs');
$primary->safe_psql('jobs',
	'CREATE EXTENSION job_queue; CREATE TABLE done (tag text, standby boolean)');
# executors start for jobs: first the launcher, and the scheduler that
# finds the extension
ok( $primary->poll_query_until(
		'jobs', q{
	SELECT count(*) FILTER (WHERE backend_type = 'job_queue launcher') = 1
		   AND (SELECT count(*) FROM jq_executors) = 1
	FROM pg_stat_activity}),
	'primary: the launcher runs and the scheduler found the extension');

# a job the primary runs before the standby exists
my $first = $primary->safe_psql('jobs',
	"SELECT jq_enqueue('INSERT INTO done VALUES (''primary'', pg_is_in_recovery())')"
);
ok(wait_for_job_state($primary, 'jobs', $first, 'succeeded'),
	'primary: a job ran');

# jobs the primary will not run: they are due once the standby is promoted
$primary->safe_psql('jobs', 'ALTER SYSTEM SET jq.execute_in_server = off');
$primary->reload;
ok(wait_for_worker_count($primary, 'executor', '0'),
	'primary: executors stopped with jq.execute_in_server off');
my $pending = $primary->safe_psql('jobs',
	"SELECT jq_enqueue('INSERT INTO done VALUES (''pending'', pg_is_in_recovery())')"
);
my $delayed = $primary->safe_psql('jobs',
	"SELECT jq_enqueue('INSERT INTO done VALUES (''delayed'', pg_is_in_recovery())', run_at => now() + interval '10 seconds')"
);

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
# the standby has its own settings: its workers run jobs once promoted
$standby->append_conf('postgresql.auto.conf',
	"jq.execute_in_server = on\n");
$standby->start;

# a job enqueued on the primary while the standby runs
my $while_standby = $primary->safe_psql('jobs',
	"SELECT jq_enqueue('INSERT INTO done VALUES (''while_standby'', pg_is_in_recovery())')"
);
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'standby is in recovery');
is($standby->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'job_queue', 'standby preloads job_queue too');
is( $standby->safe_psql('jobs',
		'SELECT string_agg(id::text, \',\' ORDER BY id) FROM jq_jobs WHERE state <> \'succeeded\''),
	"$pending,$delayed,$while_standby",
	'standby: the pending jobs were replicated');

# from its start, the standby's log is checked for a few seconds of running
sleep(5);
is($standby->safe_psql('postgres', $workers_query),
	'', 'standby: no job_queue worker runs');
my $log = slurp_file($standby->logfile);
# server messages only: the tests' own statements are logged too
my @jq_lines =
  grep { /^\d{4}-/ && !/ statement: / && /job_queue/ } split /\n/, $log;
is(scalar(@jq_lines), 0, 'standby: no job_queue message in its log')
  or diag(join("\n", @jq_lines[ 0 .. ($#jq_lines < 9 ? $#jq_lines : 9) ]));
unlike($log, qr/FATAL|ERROR|PANIC/, 'standby: no error in its log');
is($standby->safe_psql('jobs', "SELECT count(*) FROM done WHERE standby"),
	'0', 'standby: no job ran there');

# promote: workers start without a restart and run the pending jobs
my $started = $standby->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
$primary->stop;
$standby->promote;
ok( $standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'standby promoted');
ok( $standby->poll_query_until(
		'postgres', q{
	SELECT count(*) FILTER (WHERE backend_type = 'job_queue launcher') = 1
		   AND count(*) FILTER (WHERE backend_type = 'job_queue scheduler') = 1
		   AND count(*) FILTER (WHERE backend_type = 'job_queue executor') >= 1
	FROM pg_stat_activity}),
	'promoted: launcher, scheduler and executors run');
is($standby->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$started, 'promoted without a restart');

ok( $standby->poll_query_until(
		'jobs',
		"SELECT string_agg(state, ',' ORDER BY id) FROM jq_jobs WHERE id IN ($pending, $while_standby)",
		'succeeded,succeeded'),
	'promoted: the pending jobs ran');

my $new = $standby->safe_psql('jobs',
	"SELECT jq_enqueue('INSERT INTO done VALUES (''promoted'', pg_is_in_recovery())')"
);
ok(wait_for_job_state($standby, 'jobs', $new, 'succeeded'),
	'promoted: a new job ran');
ok(wait_for_job_state($standby, 'jobs', $delayed, 'succeeded'),
	'promoted: the delayed job ran');
is( $standby->safe_psql('jobs',
		"SELECT started_at >= run_at FROM jq_jobs WHERE id = $delayed"),
	't', 'promoted: the delayed job did not run before it was due');

is( $standby->safe_psql(
		'jobs',
		"SELECT string_agg(tag || ':' || standby, ',' ORDER BY tag) FROM done"),
	'delayed:false,pending:false,primary:false,promoted:false,while_standby:false',
	'each job ran once, outside recovery');
is( $standby->safe_psql(
		'jobs',
		"SELECT string_agg(id || ':' || attempts, ',' ORDER BY id) FROM jq_jobs"),
	"$first:1,$pending:1,$delayed:1,$while_standby:1,$new:1",
	'each job took one attempt');

$standby->stop;
done_testing();
