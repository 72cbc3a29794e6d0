# Shell jobs across shutdowns, restarts and the loss of their executor.
# Every job writes the pids of its processes (leader, child, orphaned
# grandchild) to files, so the test can check that none outlives the job.
#
#  1. fast shutdown while shell jobs run: the server stops within
#     jq.shell_kill_grace (a job that ignores SIGTERM is SIGKILLed), no
#     process of the jobs is left, the jobs are ready again with their
#     attempt given back, and after the restart they run again and succeed;
#  2. restart with shell jobs ready but not started, and a delayed one: all
#     of them run after the restart, the delayed one not before its run_at;
#  3. kill -9 of a shell executor: the postmaster restarts the cluster, the
#     job's processes are killed, the job is charged the attempt and
#     succeeds on the next one;
#  4. pg_terminate_backend() of a shell executor: its job's processes are
#     killed, the job is released with its attempt given back and runs
#     again, with no crash restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(time);

# every wait here is for something due within a few seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 30
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $grace = 2;
my $node = job_queue_node('shell_restart', conf => qq{
restart_after_crash = on
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
jq.shell_kill_grace = ${grace}s
jq.shell_executors_per_database = 3
});
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

my $dir = PostgreSQL::Test::Utils::tempdir;
my @all_pids;    # every process a job started, killed at the end if left

# Enqueue a long_shell_command job per tag, running in $dir; returns the ids.
sub enqueue_long
{
	my (%tags) = @_;    # tag => options of long_shell_command
	return map {
		$node->safe_psql('postgres',
			    'SELECT jq_enqueue_shell($cmd$'
			  . long_shell_command($_, %{ $tags{$_} })
			  . "\$cmd\$, working_dir => '$dir')")
	} sort keys %tags;
}

# "state attempts errors" of each job, in the order given
sub job_states
{
	my (@ids) = @_;
	return $node->safe_psql(
		'postgres', 'SELECT string_agg(state || \' \' || attempts || \' \' || '
		  . 'coalesce(jsonb_array_length(errors), 0), \', \' ORDER BY id) FROM jq_jobs WHERE id IN ('
		  . join(',', @ids) . ')');
}

# Start a long_shell_command job $tag; returns its id, the pid of the
# executor running it and the pids of its processes.
sub start_long_job
{
	my ($tag) = @_;
	my ($id) = enqueue_long($tag => {});
	my @pids = job_pids($dir, $tag);
	my $executor = $node->safe_psql(
		'postgres', qq{
	SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'job_queue shell executor' AND query LIKE '%$tag.ran%'});
	ok($executor, "$tag: found the job's executor ($executor)");
	return ($id, $executor, @pids);
}

# "attempts errors last_error / stdout" of a job
sub job_outcome
{
	my ($id) = @_;
	return $node->safe_psql(
		'postgres', qq{
	SELECT attempts || ' ' || coalesce(jsonb_array_length(errors), 0) || ' '
		   || coalesce(last_error, '') || ' / ' || (result->>'stdout')
	FROM jq_jobs WHERE id = $id});
}

sub wait_all_succeeded
{
	my ($what, @ids) = @_;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) FILTER (WHERE state = 'succeeded') = count(*) FROM jq_jobs WHERE id IN ("
			  . join(',', @ids) . ')'),
		"$what: the jobs succeeded");
}

###########################################################################
# 1. fast shutdown while shell jobs run
###########################################################################

my %tags1 = (fast_a => {}, fast_b => {}, fast_stubborn => { trap_term => 1 });
my @ids1 = enqueue_long(%tags1);
my @pids1 = map { job_pids($dir, $_) } sort keys %tags1;
push @all_pids, @pids1;
is(job_states(@ids1), join(', ', ('running 1 0') x 3),
	'fast shutdown: three shell jobs run, on their first attempt');

my $t0 = time();
$node->stop('fast');
my $stop_s = time() - $t0;
note sprintf('fast shutdown took %.2f s', $stop_s);
cmp_ok($stop_s, '>=', $grace - 0.5,
	'fast shutdown: the job that ignores SIGTERM had its grace period');
cmp_ok($stop_s, '<', $grace + 4, 'fast shutdown: the server stopped within the grace period');
is(join(' ', live_after(2, \@pids1)), '',
	'fast shutdown: no process of the jobs is left');

# read the jobs before any worker can touch them
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;
is(job_states(@ids1), join(', ', ('ready 0 0') x 3),
	'fast shutdown: the jobs are ready again with their attempt given back');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM jq.job WHERE executor_token IS NOT NULL OR lease_owner IS NOT NULL'),
	0,
	'fast shutdown: no job is held by anyone');
$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'job_queue'");
$node->start;

wait_all_succeeded('fast shutdown', @ids1);
is(job_states(@ids1), join(', ', ('succeeded 1 0') x 3),
	'fast shutdown: the jobs succeeded on what counts as their first attempt');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(result->>'stdout', '') FROM jq_jobs WHERE id IN (" . join(',', @ids1) . ')'
	),
	"rerun, attempt 1\n" x 3,
	'fast shutdown: the rerun saw JQ_ATTEMPT=1');

###########################################################################
# 2. restart with shell jobs waiting, one of them delayed
###########################################################################

$node->safe_psql('postgres',
	'ALTER SYSTEM SET jq.shell_executors_per_database = 0; SELECT pg_reload_conf()');
ok(wait_for_worker_count($node, 'shell executor', '0'),
	'queued: the shell executors stopped');
my @ids2 = split /\n/, $node->safe_psql(
	'postgres', qq{
	SELECT jq_enqueue_shell('echo queued ' || n, working_dir => '$dir')
	FROM generate_series(1, 4) n});
my $delayed = $node->safe_psql('postgres',
	"SELECT jq_enqueue_shell('echo delayed', run_at => clock_timestamp() + interval '4 seconds')");
sleep(1);
is(job_states(@ids2, $delayed), join(', ', ('ready 0 0') x 4, 'scheduled 0 0'),
	'queued: nothing ran without shell executors');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET jq.shell_executors_per_database');
$node->restart;
wait_all_succeeded('queued', @ids2, $delayed);
is(job_states(@ids2, $delayed), join(', ', ('succeeded 1 0') x 5),
	'queued: every job ran once after the restart');
is( $node->safe_psql(
		'postgres', "SELECT started_at >= run_at FROM jq_jobs WHERE id = $delayed"),
	't',
	'queued: the delayed job did not start before its run_at');

###########################################################################
# 3. kill -9 of a shell executor
###########################################################################

my ($id3, $executor3, @pids3) = start_long_job('kill9');
push @all_pids, @pids3;
kill_for_crash_restart($node, $executor3);
ok(1, 'kill -9: the postmaster restarted the cluster');
# The leader dies with its executor (PR_SET_PDEATHSIG); the rest of its
# process group is found by the scheduler after the restart, by the marker in
# the environment of every process of a job.
is(join(' ', live_after(5, \@pids3)), '', 'kill -9: no process of the job is left');
ok($node->log_contains(qr/killed process \d+, left over from a shell job/),
	'kill -9: the scheduler says what it killed');

wait_all_succeeded('kill -9', $id3);
is(job_outcome($id3), "2 1 server restarted while the job was running / rerun, attempt 2\n",
	'kill -9: the job was charged the attempt and succeeded on the next');

###########################################################################
# 4. pg_terminate_backend() of a shell executor
###########################################################################

my ($id4, $executor4, @pids4) = start_long_job('terminated');
push @all_pids, @pids4;
my $log_offset = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($executor4)"),
	't', 'terminate: executor terminated');
is(join(' ', live_after(5, \@pids4)), '', 'terminate: no process of the job is left');

wait_all_succeeded('terminate', $id4);
is(job_outcome($id4), "1 0  / rerun, attempt 1\n",
	'terminate: the job was released with its attempt given back, and ran again');
ok(!$node->log_contains(qr/reinitializing|terminated by signal/, $log_offset),
	'terminate: no crash restart');

is(kill_leftovers(@all_pids), 0, 'no process of any job was left running');
$node->stop;
done_testing();
