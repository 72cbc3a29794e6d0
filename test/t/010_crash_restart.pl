# Jobs in flight survive a crash or the loss of an executor: every job ends
# succeeded, its effect is committed exactly once, and only the jobs that were
# running when it happened are charged an attempt.
#
#  1. immediate shutdown mid-run, then restart: every job still "running"
#     after crash recovery (read before any worker starts) is retried once;
#  2. kill -9 of an executor: the postmaster restarts the whole cluster;
#  3. pg_terminate_backend() of an executor: no crash; the scheduler charges
#     only the job that executor was running and gives the other jobs of its
#     batch their attempt back.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $node = job_queue_node('crash_restart', conf => q{
restart_after_crash = on
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_queue;
CREATE TABLE effects (
	job_key bigint PRIMARY KEY,
	done_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- which job inserts which effect row, by scenario
CREATE TABLE jobmap (
	job_key bigint PRIMARY KEY,
	job_id bigint NOT NULL UNIQUE,
	scenario int NOT NULL
);
CREATE SEQUENCE first_try;
});

my $batch_size = $node->safe_psql('postgres', 'SHOW jq.batch_size');
my $executors = $node->safe_psql('postgres', 'SHOW jq.executors_per_database');
my $restart_reason = 'server restarted while the job was running';

# Enqueue $n jobs of scenario $scen in one transaction, each inserting its own
# effect row then sleeping 20 ms; record which job owns which key.
sub enqueue_effect_jobs
{
	my ($scen, $n) = @_;
	my $base = $scen * 100000;
	$node->safe_psql(
		'postgres', qq{
INSERT INTO jobmap (job_key, job_id, scenario)
SELECT $base + s.k, e.ids[s.k], $scen
FROM (SELECT jq_enqueue_bulk(array_agg(
			format('INSERT INTO effects (job_key) VALUES (%s); SELECT pg_sleep(0.02)',
				   $base + k) ORDER BY k)) AS ids
	  FROM generate_series(1, $n) k) e,
	 generate_series(1, $n) s(k);
});
	# the mapping must match the commands
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM jobmap m JOIN jq_jobs j ON j.id = m.job_id
WHERE m.scenario = $scen
  AND j.command = format('INSERT INTO effects (job_key) VALUES (%s); SELECT pg_sleep(0.02)',
						 m.job_key)}),
		$n,
		"scenario $scen: $n jobs enqueued");
}

sub finished_count
{
	my ($scen) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM jq.job_history h JOIN jobmap m ON m.job_id = h.id
WHERE m.scenario = $scen});
}

sub wait_until_finished
{
	my ($scen, $min) = @_;
	$node->poll_query_until(
		'postgres', qq{
SELECT count(*) >= $min FROM jq.job_history h JOIN jobmap m ON m.job_id = h.id
WHERE m.scenario = $scen})
	  or die "scenario $scen: fewer than $min jobs finished in time";
}

sub wait_no_active_job
{
	my ($what) = @_;
	ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM jq.job'),
		"$what: no job left active");
}

# Every job of scenario $scen succeeded with its effect committed once;
# returns a hash of job id => "attempts|number of errors|last error".
sub check_all_done_once
{
	my ($scen, $n) = @_;
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FILTER (WHERE j.state = 'succeeded') || '/' || count(*)
FROM jobmap m LEFT JOIN jq_jobs j ON j.id = m.job_id
WHERE m.scenario = $scen}),
		"$n/$n",
		"scenario $scen: every job succeeded");
	is($node->safe_psql('postgres', "SELECT count(*) FROM jq_jobs WHERE state = 'failed'"),
		0, "scenario $scen: no job failed anywhere");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(e.job_key) || '/' || count(*)
FROM jobmap m LEFT JOIN effects e USING (job_key)
WHERE m.scenario = $scen}),
		"$n/$n",
		"scenario $scen: every job's effect row is there");
	is( $node->safe_psql(
			'postgres', qq{
SELECT count(*) FROM effects e
WHERE e.job_key BETWEEN $scen * 100000 AND $scen * 100000 + 99999
  AND NOT EXISTS (SELECT FROM jobmap m WHERE m.job_key = e.job_key)}),
		0,
		"scenario $scen: no stray effect row");

	my %h;
	for my $row (
		split /\n/,
		$node->safe_psql(
			'postgres', qq{
SELECT j.id, j.attempts, coalesce(jsonb_array_length(j.errors), 0), coalesce(j.last_error, '')
FROM jobmap m JOIN jq_jobs j ON j.id = m.job_id
WHERE m.scenario = $scen}))
	{
		my ($id, @rest) = split /\|/, $row, 4;
		$h{$id} = join('|', @rest);
	}
	return \%h;
}

# Compare each job's attempts with what is expected: 2 with one error
# ($reason) for the ids in %$charged, else 1 with no error.
sub check_attempts
{
	my ($what, $jobs, $charged, $reason) = @_;
	my @bad;
	for my $id (sort { $a <=> $b } keys %$jobs)
	{
		my $want = $charged->{$id} ? "2|1|$reason" : "1|0|";
		push @bad, "job $id: got $jobs->{$id}, want $want"
		  if $jobs->{$id} ne $want;
	}
	is(scalar(@bad), 0, "$what: attempts charged exactly to the interrupted jobs")
	  or diag join("\n", @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ]);
}

###########################################################################
# 1. immediate shutdown while jobs run
###########################################################################

enqueue_effect_jobs(1, 400);
wait_until_finished(1, 60);
$node->stop('immediate');

# Recover with no job_queue worker, so that the jobs the crash left
# "running" can be read before the scheduler takes them back.
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;

my $done1 = finished_count(1);
cmp_ok($done1, '<', 400, "scenario 1: crash came before all jobs finished ($done1 done)");
my @running1 = split /\n/,
  $node->safe_psql(
	'postgres', q{
SELECT j.id FROM jq.job j JOIN jobmap m ON m.job_id = j.id
WHERE m.scenario = 1 AND j.state = 'running' AND j.executor_token IS NOT NULL
ORDER BY j.id});
my %charged1 = map { $_ => 1 } @running1;
note scalar(@running1) . ' jobs were running at the crash';
cmp_ok(scalar(@running1), '>', 0, 'scenario 1: some jobs were running at the crash');
cmp_ok(scalar(@running1), '<=', $executors * $batch_size,
	'scenario 1: no more jobs running than the executors can claim');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM jq.job j JOIN jobmap m ON m.job_id = j.id
WHERE m.scenario = 1 AND j.state = 'running' AND j.attempts <> 1}),
	0,
	'scenario 1: running jobs had their first attempt counted');

# what committed before the crash: a finished job and its effect go together
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM jobmap m
WHERE m.scenario = 1
  AND EXISTS (SELECT FROM jq.job_history h WHERE h.id = m.job_id AND h.state = 'succeeded')
	  <> EXISTS (SELECT FROM effects e WHERE e.job_key = m.job_key)}),
	0,
	'scenario 1: after recovery, effects exist exactly for the succeeded jobs');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM jobmap m
WHERE m.scenario = 1 AND NOT EXISTS (SELECT FROM jq.job j WHERE j.id = m.job_id)
  AND NOT EXISTS (SELECT FROM jq.job_history h WHERE h.id = m.job_id)}),
	0,
	'scenario 1: after recovery, no job is lost');

$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'job_queue'");
$node->start;

wait_no_active_job('scenario 1');
my $jobs1 = check_all_done_once(1, 400);
check_attempts('scenario 1', $jobs1, \%charged1, $restart_reason);

###########################################################################
# 2. kill -9 of an executor: the postmaster restarts every process
###########################################################################

enqueue_effect_jobs(2, 400);
wait_until_finished(2, 60);

my ($victim, $finished_before) = split /\|/,
  $node->safe_psql(
	'postgres', q{
SELECT (SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'job_queue executor' AND state = 'active'
		  AND query LIKE 'INSERT INTO effects%'
		ORDER BY pid LIMIT 1),
	   (SELECT coalesce(array_to_string(array_agg(h.id), ','), '')
		FROM jq.job_history h JOIN jobmap m ON m.job_id = h.id
		WHERE m.scenario = 2)});
ok($victim, "scenario 2: found a busy executor ($victim)");
my $log_offset = -s $node->logfile;
kill 'KILL', $victim;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
ok(1, 'scenario 2: the postmaster restarted the cluster');

wait_no_active_job('scenario 2');
my $done2 = scalar(grep { length } split /,/, $finished_before);
cmp_ok($done2, '<', 400, "scenario 2: kill came before all jobs finished ($done2 done)");
my $jobs2 = check_all_done_once(2, 400);

# Which jobs were running when the cluster went down cannot be read back
# here, so check that each job was charged at most the one interrupted
# attempt, for the restart, and that jobs finished before it were not.
my %charged2 = map { $_ => 1 } grep { $jobs2->{$_} ne '1|0|' } keys %$jobs2;
note scalar(keys %charged2) . ' jobs were charged for the restart';
cmp_ok(scalar(keys %charged2), '>', 0, 'scenario 2: some jobs were running at the crash');
cmp_ok(scalar(keys %charged2), '<=', $executors * $batch_size,
	'scenario 2: no more jobs charged than the executors can claim');
my @early_charged = grep { $charged2{$_} } split /,/, $finished_before;
is(scalar(@early_charged), 0, 'scenario 2: no job finished before the kill was charged');
check_attempts('scenario 2', $jobs2, \%charged2, $restart_reason);

###########################################################################
# 3. pg_terminate_backend() of an executor: the scheduler reclaims precisely
###########################################################################

# One transaction: a job that sleeps on its first attempt only (sequences
# are not transactional), then 30 short jobs, all claimed by one executor.
my $slow_cmd =
  q{SELECT pg_sleep(CASE WHEN nextval('first_try') = 1 THEN 60 ELSE 0 END); }
  . q{INSERT INTO effects (job_key) VALUES (300000)};
$node->safe_psql(
	'postgres', qq{
INSERT INTO jobmap (job_key, job_id, scenario)
SELECT 300000 + s.k, e.ids[s.k + 1], 3
FROM (SELECT jq_enqueue_bulk(ARRAY[\$cmd\$$slow_cmd\$cmd\$]
		|| array_agg(format('INSERT INTO effects (job_key) VALUES (%s); SELECT pg_sleep(0.02)',
							300000 + k) ORDER BY k)) AS ids
	  FROM generate_series(1, 30) k) e,
	 generate_series(0, 30) s(k);
});
my $slow = $node->safe_psql('postgres', 'SELECT job_id FROM jobmap WHERE job_key = 300000');

$node->poll_query_until(
	'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'job_queue executor' AND query LIKE '%first_try%'})
  or die 'the slow job did not start';
my ($pid3, $batch3) = split /\|/,
  $node->safe_psql(
	'postgres', qq{
SELECT (SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'job_queue executor' AND query LIKE '%first_try%'),
	   (SELECT string_agg(j.id::text, ',' ORDER BY j.id) FROM jq.job j
		WHERE j.state = 'running'
		  AND j.executor_token = (SELECT executor_token FROM jq.job WHERE id = $slow))});
my @batch3 = split /,/, $batch3;
cmp_ok(scalar(@batch3), '>', 1,
	'scenario 3: the executor holds other jobs besides the one it runs (' . scalar(@batch3) . ')');
ok(grep({ $_ == $slow } @batch3), 'scenario 3: the slow job is in that batch');

$log_offset = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid3)"),
	't', 'scenario 3: executor terminated');

wait_no_active_job('scenario 3');
my $jobs3 = check_all_done_once(3, 31);
check_attempts('scenario 3', $jobs3, { $slow => 1 },
	'executor exited while running the job');
ok(!$node->log_contains(qr/reinitializing|terminated by signal/, $log_offset),
	'scenario 3: no crash restart');
isnt($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid3"),
	1, 'scenario 3: the terminated executor is gone');
ok(wait_for_worker_count($node, 'executor', $executors),
	'scenario 3: the scheduler replaced the executor');

$node->stop;
done_testing();
