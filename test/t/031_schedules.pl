# Recurring schedules never fire one fire time twice, and fire once for the
# time the server was down:
#
#  1. concurrent ticks: while the scheduler runs, four sessions call
#     jq._tick() as fast as they can, as a second scheduler would; each fire
#     time still gets one job;
#  2. across a restart: with the server stopped for several periods, the
#     schedule fires once for the downtime (the first fire time it missed),
#     then goes on from the restart;
#  3. a crash right after firing: a shell job of the schedule kills the
#     postmaster (kill -9) as soon as it runs; after the restart the fire
#     time it came from is not enqueued again.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use JobQueueTest;

my $node = job_queue_node('schedules');
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

# jobs of a schedule, and fire times (run_at) that got more than one job
sub job_count
{
	my ($name, $where) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM jq_jobs WHERE schedule_name = '$name' AND ($where)");
}

sub fired_twice
{
	my ($name) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM (SELECT run_at FROM jq_jobs WHERE schedule_name = '$name'
					  GROUP BY run_at HAVING count(*) > 1) d});
}

sub wait_jobs
{
	my ($name, $where, $n) = @_;
	$node->poll_query_until(
		'postgres', qq{
SELECT count(*) >= $n FROM jq_jobs WHERE schedule_name = '$name' AND ($where)})
	  or die "schedule $name: fewer than $n jobs ($where) in time";
}

###########################################################################
# 1. concurrent ticks
###########################################################################

$node->safe_psql('postgres',
	"SELECT jq_schedule('contended', 'every 1 second', 'SELECT 1')");
$node->pgbench(
	'--no-vacuum --client=4 --time=5',
	0,
	[qr{processed: [1-9]}],
	[qr{^$}],
	'four sessions tick concurrently with the scheduler',
	{ '031_tick' => 'SELECT jq._tick();' });
$node->safe_psql('postgres', "SELECT jq_unschedule('contended')");
cmp_ok(job_count('contended', 'true'), '>=', 4, 'concurrent ticks: the schedule fired');
is(fired_twice('contended'), 0, 'concurrent ticks: no fire time got two jobs');

###########################################################################
# 2. across a restart
###########################################################################

$node->safe_psql('postgres', "SELECT jq_schedule('beat', 'every 1 second', 'SELECT 1')");
wait_jobs('beat', 'true', 3);
$node->stop;
sleep(6);
$node->start;
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
wait_jobs('beat', "created_at >= '$started'", 3);

# jobs enqueued after the restart for fire times before it: the catch-up
is(job_count('beat', "created_at >= '$started' AND run_at < '$started'"),
	1, 'restart: one catch-up run for the downtime');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM jq_jobs WHERE schedule_name = 'beat' AND created_at >= '$started'
  AND run_at < (SELECT max(run_at) FROM jq_jobs
				WHERE schedule_name = 'beat' AND created_at < '$started')}),
	0,
	'restart: the catch-up is the first fire time missed, not an earlier one');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM jq_jobs WHERE schedule_name = 'beat'
  AND run_at > (SELECT max(run_at) FROM jq_jobs
				WHERE schedule_name = 'beat' AND created_at < '$started')
  AND run_at < '$started'}),
	1,
	'restart: no other fire time of the downtime got a job');
is(fired_twice('beat'), 0, 'restart: no fire time got two jobs');
is(job_count('beat', "state <> 'succeeded' AND finished_at IS NOT NULL"),
	0, 'restart: every finished run succeeded');
$node->safe_psql('postgres', "SELECT jq_unschedule('beat')");

###########################################################################
# 3. kill -9 of the postmaster right after a fire
###########################################################################

# shell jobs run in the data directory; only the first run kills
my ($postmaster) = split /\n/,
  PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid');
$node->safe_psql(
	'postgres', q{
SELECT jq_schedule('crash', 'every 1 second', kind => 'shell',
				   command => '[ -e jq_crash.done ] || { touch jq_crash.done; kill -KILL $(head -1 postmaster.pid); }')});

for (my $waited = 0; kill(0, $postmaster); $waited += 0.1)
{
	die 'the postmaster was not killed' if $waited > $PostgreSQL::Test::Utils::timeout_default;
	sleep(0.1);
}
ok(1, 'crash: a run of the schedule killed the postmaster');

# its children leave once they notice; until then the server cannot start
$node->_update_pid(-1);
my $restarted = 0;
for (my $tries = 0; !$restarted && $tries < 60; $tries++)
{
	$restarted = $node->start(fail_ok => 1);
	sleep(1) unless $restarted;
}
ok($restarted, 'crash: the server started again');
$started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
wait_jobs('crash', "created_at >= '$started'", 3);

my $killer = $node->safe_psql(
	'postgres', qq{
SELECT run_at FROM jq_jobs WHERE schedule_name = 'crash' AND created_at < '$started'
ORDER BY run_at DESC LIMIT 1});
is(job_count('crash', "run_at = '$killer'"), 1,
	'crash: the fire time of the killing run has one job');
is(job_count('crash', "created_at >= '$started' AND run_at <= '$killer'"), 0,
	'crash: nothing fired again for it or before it');
is(fired_twice('crash'), 0, 'crash: no fire time got two jobs');
$node->safe_psql('postgres', "SELECT jq_unschedule('crash')");
ok( $node->poll_query_until(
		'postgres', q{
SELECT NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'crash' AND finished_at IS NULL)}),
	'crash: every run finished');
is(job_count('crash', "state <> 'succeeded'"), 0,
	'crash: every run succeeded, the killing one when retried');

$node->stop;
done_testing();
