# kill -9 of a shell executor running a job, twenty times: each time the
# postmaster restarts the cluster, the scheduler takes the job back, and a
# new shell executor runs it again within seconds; the shell job enqueued
# behind it runs too.  Every path that makes a job runnable after the crash
# must reach an executor of its kind, including one that is still starting.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(time);

my $rounds = 20;
# a job taken back runs again this soon after the server accepts connections
my $rerun_limit = 15;

my $node = job_queue_node('pool_shell_kill', conf => q{
restart_after_crash = on
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
});
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

my $dir = PostgreSQL::Test::Utils::tempdir;
my @all_pids;
my ($late, $failed) = (0, 0);
my $slowest = 0;

for my $round (1 .. $rounds)
{
	my $tag = "round$round";
	my $id = $node->safe_psql('postgres',
		    'SELECT jq_enqueue_shell($cmd$'
		  . long_shell_command($tag)
		  . "\$cmd\$, working_dir => '$dir')");
	my @pids = job_pids($dir, $tag);
	push @all_pids, @pids;
	# a second shell job waits behind it when shell executors are scarce
	my $next = $node->safe_psql('postgres',
		"SELECT jq_enqueue_shell('echo next $round', working_dir => '$dir')");
	my $executor = $node->safe_psql(
		'postgres', qq{
		SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'job_queue shell executor' AND query LIKE '%$tag.ran%'});
	unless ($executor =~ /^\d+$/)
	{
		$failed++;
		diag("$tag: no executor found running the job");
		next;
	}

	kill_for_crash_restart($node, $executor);
	my $ready = time();
	my $ok = wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM jq_jobs WHERE id IN ($id, $next) AND state = 'succeeded'"
			) eq '2';
		},
		60);
	my $took = time() - $ready;
	$slowest = $took if $took > $slowest;
	if (!$ok)
	{
		$failed++;
		diag("$tag: the jobs did not run again within 60 s: "
			  . $node->safe_psql('postgres',
				"SELECT string_agg(id || ' ' || state || ' ' || attempts, ', ') FROM jq_jobs WHERE id IN ($id, $next)"
			  ));
	}
	elsif ($took > $rerun_limit)
	{
		$late++;
		diag(sprintf('%s: the job ran again after %.1f s', $tag, $took));
	}
}

is($failed, 0, "$rounds kill -9 of a shell executor: every job ran again");
is($late, 0,
	sprintf('each within %d s of the restart (slowest: %.1f s)', $rerun_limit, $slowest));
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM jq_jobs
	WHERE command LIKE '%.ran%' AND (state <> 'succeeded' OR attempts <> 2 OR result::text NOT LIKE '%rerun, attempt 2%')}),
	'0',
	'each killed job was charged its attempt and succeeded on the next');
is(kill_leftovers(@all_pids), 0, 'no process of any job was left running');

$node->stop;
done_testing();
