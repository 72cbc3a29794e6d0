# Without shared_preload_libraries the extension still installs, with a
# WARNING saying so; jobs can be enqueued, nothing in the server runs them,
# and an external worker can take them with jq_dequeue and finish them with
# jq_complete or jq_fail.  With no scheduler, jq_dequeue itself gives jobs
# whose lease expired another attempt, and takes back jobs that in-server
# executors were running when the server stopped, if it comes back without
# the library.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'nothing is preloaded');

my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'CREATE EXTENSION job_queue');
is($ret, 0, 'CREATE EXTENSION succeeds without preloading')
  or diag($stderr);
like(
	$stderr,
	qr/WARNING:.*job_queue.*shared_preload_libraries/,
	'CREATE EXTENSION warns that job_queue is not preloaded');
is( $node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'job_queue'"),
	'1.0',
	'the extension is installed');

my @ids = split /\n/,
  $node->safe_psql('postgres', q{
	SELECT jq_enqueue('SELECT 1');
	SELECT jq_enqueue('SELECT 2', queue => 'other');
	SELECT jq_enqueue('SELECT 3', priority => -1);
});
is(scalar(@ids), 3, 'jq_enqueue returned three ids');
like($_, qr/^\d+$/, "id $_ is a number") for @ids;
is(scalar(keys %{ { map { $_ => 1 } @ids } }), 3, 'the ids are distinct');

# nothing runs them
sleep(2);
is(worker_count($node), '0', 'no job_queue worker runs');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(state || ':' || attempts, ',' ORDER BY id) FROM jq_jobs"),
	'ready:0,ready:0,ready:0',
	'the jobs stay ready, untouched');

# an external worker takes the default queue, highest priority first
my $claimed = $node->safe_psql('postgres', q{
	SELECT string_agg(id || ':' || command || ':' || attempt, ',' ORDER BY n)
	FROM jq_dequeue('default', 10, '1 minute', 'tap worker') WITH ORDINALITY d(id, queue, kind, command, argv, env, working_dir, payload, attempt, max_attempts, timeout, lease_expires_at, n)});
is($claimed, "$ids[2]:SELECT 3:1,$ids[0]:SELECT 1:1",
	'jq_dequeue claims the ready jobs of its queue, by priority');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(id || ':' || state || ':' || lease_owner, ',' ORDER BY id) FROM jq_jobs WHERE state = 'running'"
	),
	"$ids[0]:running:tap worker,$ids[2]:running:tap worker",
	'claimed jobs are running under the worker\'s lease');

is( $node->safe_psql('postgres',
		qq{SELECT jq_complete($ids[0], '{"done": 1}')}),
	't', 'jq_complete of a held job');
is( $node->safe_psql('postgres',
		"SELECT jq_fail($ids[2], 'external failure', retry => false)"),
	't', 'jq_fail without retry');
is($node->safe_psql('postgres', "SELECT jq_complete($ids[0])"),
	'f', 'jq_complete of a finished job returns false');

is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts || ':' || result::text FROM jq_jobs WHERE id = $ids[0]"
	),
	'succeeded:1:{"done": 1}',
	'completed job succeeded with its result');
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || last_error FROM jq_jobs WHERE id = $ids[2]"),
	'failed:external failure',
	'failed job failed with its error');

# the other queue, then nothing left
is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(id::text, ',') FROM jq_dequeue('other', 10, '1 minute')}),
	$ids[1],
	'jq_dequeue of the other queue');
is($node->safe_psql('postgres', "SELECT jq_complete($ids[1])"),
	't', 'jq_complete of the last job');
is($node->safe_psql('postgres', 'SELECT count(*) FROM jq_dequeue(NULL, 10)'),
	'0', 'nothing left to dequeue');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(state, ',' ORDER BY id) FROM jq_jobs"),
	'succeeded,succeeded,failed',
	'every job finished as the external worker said');

# no scheduler expires leases: jq_dequeue does
my $leased = $node->safe_psql('postgres',
	"SELECT jq_enqueue('SELECT 4', queue => 'lease', max_attempts => 3)");
is( $node->safe_psql(
		'postgres',
		"SELECT id || ':' || attempt FROM jq_dequeue('lease', 1, '1 second')"),
	"$leased:1",
	'a job handed out with a one-second lease');
my $again;
ok( wait_until(
		sub {
			$again = $node->safe_psql('postgres',
				"SELECT id || ':' || attempt FROM jq_dequeue('lease', 1, '1 minute')");
			return $again ne '';
		}),
	'once its lease expired, jq_dequeue hands it out again');
is($again, "$leased:2", 'on its second attempt');
is( $node->safe_psql(
		'postgres', "SELECT last_error FROM jq_jobs WHERE id = $leased"),
	'lease expired',
	'the expired lease is recorded');

$node->stop;

# in-server executors run two jobs; the server stops and comes back without
# the library
my $was = job_queue_node('was_preloaded');
$was->safe_psql('postgres', 'CREATE EXTENSION job_queue');
my @running = split /\n/, $was->safe_psql(
	'postgres', q{
	SELECT jq_enqueue('SELECT pg_sleep(60)', max_attempts => 3) FROM generate_series(1, 2)});
ok( $was->poll_query_until(
		'postgres', "SELECT count(*) = 2 FROM jq_jobs WHERE state = 'running'"),
	'in-server executors run two jobs');
$was->safe_psql('postgres', 'CHECKPOINT');
$was->stop('immediate');
$was->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$was->start;
is( $was->safe_psql(
		'postgres', "SELECT string_agg(state::text, ',') FROM jq.job"),
	'running,running',
	'without the library, nothing takes the jobs back at startup');
my @taken;
ok( wait_until(
		sub {
			push @taken, split /\n/, $was->safe_psql(
				'postgres', q{
				SELECT id || ':' || attempt FROM jq_dequeue(NULL, 10, '1 minute')});
			return @taken >= 2;
		}),
	'jq_dequeue takes them back and hands them out');
is( join(' ', sort @taken),
	join(' ', sort map { "$_:2" } @running),
	'each on its second attempt');
is( $was->safe_psql(
		'postgres',
		"SELECT string_agg(errors -> 0 ->> 'message', ',') FROM jq_jobs WHERE id IN ("
		  . join(',', @running) . ')'),
	'server restarted without job_queue in shared_preload_libraries,'
	  . 'server restarted without job_queue in shared_preload_libraries',
	'the lost attempt is recorded');

$was->stop;
done_testing();
