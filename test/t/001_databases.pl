# Schedulers follow the extension from database to database: CREATE
# EXTENSION starts one within about a second without naming the database in
# the configuration (it stays while its database has executors, and here
# idle ones stay), DROP EXTENSION makes it leave, and commands that need a
# database to themselves (CREATE DATABASE ... TEMPLATE, ALTER DATABASE ...
# RENAME, DROP DATABASE) succeed while its workers run, even during a job;
# a role that may not run them cannot use them to stop the workers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(time);

# every wait here is for something due within a few seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 10
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

# idle executors stay, and with them their database's scheduler
my $node = job_queue_node('databases', conf => "jq.executor_idle_timeout = 0\n");

sub wait_for_workers
{
	my ($dbname, $schedulers, $executors, $what) = @_;
	# executors come on demand: two jobs due together may bring a second one,
	# but none must run where none is expected
	my $op = $executors > 0 ? '>=' : '=';
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT count(*) FILTER (WHERE backend_type = 'job_queue scheduler') = $schedulers
			   AND count(*) FILTER (WHERE backend_type = 'job_queue executor') $op $executors
		FROM pg_stat_activity WHERE datname = '$dbname'}),
		"$dbname: $schedulers scheduler(s) and executors $op $executors $what");
}

# enqueue a job recording where it ran, and wait until it has succeeded
sub run_job
{
	my ($dbname, $tag) = @_;
	my $id = $node->safe_psql($dbname,
		"SELECT jq_enqueue('INSERT INTO done VALUES (current_database(), ''$tag'')')"
	);
	like($id, qr/^\d+$/, "$dbname: jq_enqueue returned an id");
	ok(wait_for_job_state($node, $dbname, $id, 'succeeded'),
		"$dbname: job $tag succeeded");
	is( $node->safe_psql($dbname, "SELECT db FROM done WHERE tag = '$tag'"),
		$dbname, "$dbname: job $tag ran in $dbname");
	return $id;
}

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'job_queue launcher' AND datname IS NULL",
		'1'),
	'one launcher, connected to no database');
my $launcher_pid = worker_pid($node, 'launcher');

$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql($_, 'CREATE TABLE done (db text, tag text)')
  for ('db1', 'db2');

# no worker stays in a database without the extension
wait_for_workers($_, 0, 0, 'in a database without the extension')
  for ('postgres', 'db1', 'db2', 'template1');

# CREATE EXTENSION starts the database's scheduler, quickly: it finds the
# extension, and jq_executors lists the database
foreach my $db ('db1', 'db2')
{
	my $start = time;
	$node->safe_psql($db, 'CREATE EXTENSION job_queue');
	ok( $node->poll_query_until(
			$db, "SELECT count(*) FROM jq_executors WHERE datname = '$db'", '1'),
		"$db: scheduler started after CREATE EXTENSION");
	my $elapsed = time - $start;
	cmp_ok($elapsed, '<', 3,
		"$db: scheduler appeared within 3 s (took " . sprintf('%.2f', $elapsed) . ' s)');
}
is($node->safe_psql('postgres', "SHOW jq.executors_per_database"),
	'2', 'executors per database is the default');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_settings WHERE setting ~ 'db1|db2'"),
	'0',
	'no setting names the databases');

run_job('db1', 'first');
run_job('db2', 'first');
wait_for_workers($_, 1, 1, 'after a job') for ('db1', 'db2');

# jobs enqueued in one database do not run in the other
my $db1_only = $node->safe_psql('db1',
	"SELECT count(*) FROM jq_jobs WHERE state = 'succeeded'");
is($db1_only, '1', 'db1 sees only its own job');

# DROP EXTENSION: that database's workers leave, the others stay
my $db1_sched = worker_pid($node, 'scheduler', 'db1');
$node->safe_psql('db2', 'DROP EXTENSION job_queue');
wait_for_workers('db2', 0, 0, 'after DROP EXTENSION');
# the launcher does not start them again (it waits 1 s before a restart)
sleep(2);
is( worker_count($node, 'scheduler', 'db2') +
	  worker_count($node, 'executor', 'db2'),
	0, 'db2: no worker came back after DROP EXTENSION');
is(worker_pid($node, 'scheduler', 'db1'),
	$db1_sched, 'db1: scheduler untouched by the DROP in db2');
run_job('db1', 'after_drop_ext');

# and CREATE EXTENSION again brings them back
$node->safe_psql('db2', 'CREATE EXTENSION job_queue');
run_job('db2', 'recreated');
wait_for_workers('db2', 1, 1, 'after CREATE EXTENSION again');

# CREATE DATABASE ... TEMPLATE a database whose workers run
$db1_sched = worker_pid($node, 'scheduler', 'db1');
like($db1_sched, qr/^\d+$/, 'db1: scheduler running before the copy');
wait_for_workers('db1', 1, 1, 'before the copy');
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'CREATE DATABASE db1_copy TEMPLATE db1');
is($ret, 0, 'CREATE DATABASE ... TEMPLATE db1 succeeds while its workers run')
  or diag($stderr);
unlike($stderr, qr/WARNING|ERROR/, 'CREATE DATABASE ... TEMPLATE: no warning');
is( $node->safe_psql('db1_copy', 'SELECT count(*) FROM done'),
	'2', 'the copy has the template\'s data');
run_job('db1_copy', 'in_copy');
wait_for_workers('db1_copy', 1, 1, 'in the copy');
run_job('db1', 'after_copy');
wait_for_workers('db1', 1, 1, 'in the template again after the copy');
isnt(worker_pid($node, 'scheduler', 'db1'),
	$db1_sched, 'db1: a new scheduler after the copy');

# ALTER DATABASE ... RENAME while its workers run
my $db1_oid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'db1'");
my $delayed = $node->safe_psql('db1',
	"SELECT jq_enqueue('INSERT INTO done VALUES (current_database(), ''delayed'')', run_at => now() + interval '2 seconds')"
);
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'ALTER DATABASE db1 RENAME TO db1_renamed');
is($ret, 0, 'ALTER DATABASE ... RENAME succeeds while its workers run')
  or diag($stderr);
unlike($stderr, qr/WARNING|ERROR/, 'ALTER DATABASE ... RENAME: no warning');
run_job('db1_renamed', 'after_rename');
wait_for_workers('db1_renamed', 1, 1, 'after the rename');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'job_queue%' AND datid = $db1_oid AND datname <> 'db1_renamed'"
	),
	'0',
	'no worker of the renamed database under its old name');
ok(wait_for_job_state($node, 'db1_renamed', $delayed, 'succeeded'),
	'db1_renamed: a job delayed across the rename ran');
is( $node->safe_psql('db1_renamed', "SELECT db FROM done WHERE tag = 'delayed'"),
	'db1_renamed', 'db1_renamed: the delayed job ran in the renamed database');

# DROP DATABASE while its workers run, one of them in a long job
my $sleeper = $node->safe_psql('db1_copy', "SELECT jq_enqueue('SELECT pg_sleep(30)')");
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'job_queue executor' AND datname = 'db1_copy'
	  AND query = 'SELECT pg_sleep(30)' AND wait_event = 'PgSleep'},
		'1'),
	'db1_copy: an executor is running the long job');
is( $node->safe_psql('db1_copy', "SELECT state FROM jq_jobs WHERE id = $sleeper"),
	'running', 'db1_copy: the long job is running');

# a role that may not drop the database cannot stop its workers by trying
my $copy_sched = worker_pid($node, 'scheduler', 'db1_copy');
$node->safe_psql('postgres', 'CREATE ROLE intruder LOGIN');
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'DROP DATABASE db1_copy', extra_params => [ '-U', 'intruder' ]);
like($stderr, qr/must be owner of database db1_copy/,
	'DROP DATABASE by a role that does not own it fails');
is(worker_pid($node, 'scheduler', 'db1_copy'), $copy_sched,
	'db1_copy: the failed DROP left its scheduler alone');
is( $node->safe_psql('db1_copy', "SELECT state FROM jq_jobs WHERE id = $sleeper"),
	'running', 'db1_copy: and its long job still runs');

my $copy_oid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'db1_copy'");
# the claim of the long job, kept where a crash cannot lose it
my @claim_files = glob($node->data_dir . "/pg_stat_tmp/job_queue.$copy_oid.*");
is(scalar(@claim_files), 1, 'db1_copy: the executor running the job has a claim file');
my $log_offset = -s $node->logfile;
my $start = time;
($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db1_copy');
my $elapsed = time - $start;
is($ret, 0, 'DROP DATABASE succeeds while a job runs there') or diag($stderr);
unlike($stderr, qr/WARNING|ERROR/, 'DROP DATABASE: no warning');
cmp_ok($elapsed, '<', 5,
	'DROP DATABASE did not wait for the job (took ' . sprintf('%.2f', $elapsed) . ' s)');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datid = $copy_oid"),
	'0',
	'no session left in the dropped database');
is(scalar(grep { -e $_ } @claim_files), 0, 'the claim files went with the database');

# nothing tries to start in the dropped database, the rest carries on
sleep(2);
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'job_queue%' AND (datid = $copy_oid OR (datname IS NULL AND backend_type <> 'job_queue launcher'))"
	),
	'0',
	'no worker for the dropped database');
ok( !$node->log_contains(qr/database \d+ does not exist|database "db1_copy" does not exist/,
		$log_offset),
	'no attempt to connect to the dropped database');
is(worker_pid($node, 'launcher'), $launcher_pid,
	'the launcher survived all of it');
run_job('db1_renamed', 'after_dropdb');
run_job('db2', 'after_dropdb');
wait_for_workers('db1_renamed', 1, 1, 'after the DROP DATABASE of another one');
wait_for_workers('db2', 1, 1, 'after the DROP DATABASE of another one');

# DROP DATABASE of a database with idle workers
($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db2');
is($ret, 0, 'DROP DATABASE succeeds while idle workers run there')
  or diag($stderr);
is(worker_count($node, 'scheduler'), '1', 'one scheduler left in the cluster');

$node->stop;
done_testing();
