# jq_worker, the external worker, with no job run in the server
# (jq.execute_in_server = off):
#
#  1. three workers drain 2,000 shell jobs: each job succeeds, and ran at
#     least once and at most once per attempt (each run appends its id to a
#     file); a long job among them keeps its lease; an idle worker is woken
#     by NOTIFY, and takes only its queues;
#  2. kill -9 of a worker mid-job: its job's process dies with it, the lease
#     expires and another worker runs the job again;
#  3. the server restarts under running workers: they connect again and
#     every job ends succeeded;
#  4. SIGTERM lets a running job finish and claims nothing more; at the end
#     of --shutdown-grace a job is stopped and recorded to be retried; a
#     second SIGINT kills the jobs at once;
#  5. a timeout kills the job's whole process group, grandchildren
#     included, and what a job leaves running in the background dies with it;
#  6. SQL jobs run in the server as their owner (jq_run_sql) and commit
#     together with their outcome: an error, a killed worker or a timeout
#     leaves no effect, a job that ends its own transaction fails, and no
#     session state passes from job to job.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(sleep time);

# every wait here is for something due within seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 60
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $node = job_queue_node('worker', conf => q{
jq.execute_in_server = off
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '100ms'
});
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

my $dsn = $node->connstr('postgres');
my $dir = PostgreSQL::Test::Utils::tempdir;
my %workers;    # name => pid of the running jq_worker processes

# Start jq_worker as --name $name, logging to its own file.
sub start_worker
{
	my ($name, @args) = @_;
	$workers{$name} = start_jq_worker($name, '--dsn', $dsn, @args);
	return $workers{$name};
}

sub worker_log
{
	return jq_worker_log(shift);
}

sub wait_log
{
	my ($name, $regex) = @_;
	return wait_until(sub { worker_log($name) =~ $regex });
}

# Wait for a worker to exit: its exit code, "signal N", or undef on timeout.
sub wait_worker
{
	my ($name, $seconds) = @_;
	return wait_named_child(\%workers, $name, $seconds);
}

# SIGTERM and wait: the exit code.
sub stop_worker
{
	my ($name) = @_;
	kill 'TERM', $workers{$name};
	return wait_worker($name);
}

END
{
	kill 'KILL', values %workers;
}

# Whether process $pid is gone within 5 seconds.
sub wait_dead
{
	my ($pid) = @_;
	return !live_after(5, [$pid]);
}

sub query
{
	return $node->safe_psql('postgres', shift);
}

sub wait_query
{
	my ($sql, $expected) = @_;
	return $node->poll_query_until('postgres', $sql, $expected // 't');
}

# Each job of a set appends its id to $file: every job must have
# succeeded, run at least once and at most once per attempt, and no
# unknown id may be in the file.
sub check_runs
{
	my ($what, $file, $ids_sql) = @_;
	my %runs;
	$runs{$_}++ for split /\n/, slurp_file($file);
	my %attempts = map { split /\|/ } split /\n/,
	  query("SELECT j.id, j.attempts FROM jq_jobs j WHERE j.id IN ($ids_sql)");
	my @bad;
	for my $id (sort { $a <=> $b } keys %attempts)
	{
		my $n = $runs{$id} // 0;
		push @bad, "job $id ran $n times in $attempts{$id} attempts"
		  if $n < 1 || $n > $attempts{$id};
	}
	push @bad, map { "unknown job $_ in $file" } grep { !exists $attempts{$_} } keys %runs;
	is(scalar(@bad), 0, "$what: every job ran at least once, at most once per attempt")
	  or diag join("\n", @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ]);
	is( query("SELECT count(*) FILTER (WHERE state = 'succeeded') || '/' || count(*) FROM jq_jobs WHERE id IN ($ids_sql)"),
		scalar(keys %attempts) . '/' . scalar(keys %attempts),
		"$what: every job succeeded");
}

###########################################################################
# 1. three workers drain 2,000 shell jobs
###########################################################################

# one long job among them must keep its lease while short ones stream by
query(qq{CREATE TABLE drain AS
	SELECT jq_enqueue_shell(command => CASE WHEN n = 10 THEN 'sleep 4; ' ELSE '' END
									   || 'echo \$JQ_JOB_ID >> $dir/drain') AS id
	FROM generate_series(1, 2000) n});
my $t0 = time;
start_worker("drain$_", '--concurrency', 4, '--lease', 2, '--recheck', 1) for 1 .. 3;
ok(wait_query("SELECT count(*) = 2000 FROM jq_jobs WHERE id IN (SELECT id FROM drain) AND state = 'succeeded'"),
	'three workers ran 2,000 shell jobs');
note sprintf('2,000 jobs in %.1f s', time - $t0);
check_runs('drain', "$dir/drain", 'SELECT id FROM drain');
is( query("SELECT attempts || ' ' || coalesce(errors::text, '') FROM jq_jobs WHERE command LIKE 'sleep 4;%'"),
	'1 ', 'the long job kept its lease through heartbeats');
is( query("SELECT count(DISTINCT lease_owner) FROM jq_jobs WHERE id IN (SELECT id FROM drain)"),
	3, 'all three workers took jobs');
is( query("SELECT count(*) FROM jq_jobs WHERE id IN (SELECT id FROM drain) AND result->>'exit_code' = '0' AND result->>'stdout' = ''"),
	2000, 'results record the exit code and the output');

is(stop_worker("drain$_"), 0, "worker drain$_ stopped") for 1 .. 3;

# an idle worker waiting for notifications, for queue fast only
start_worker('listener', '--queue', 'fast', '--recheck', 60);
ok(wait_log('listener', qr/waiting for jobs/), 'the listener is connected');
my $other = query("SELECT jq_enqueue_shell(command => 'true', queue => 'other')");
my $fast = query("SELECT jq_enqueue_shell(command => 'true', queue => 'fast')");
$t0 = time;
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $fast"), 'a job of queue fast ran');
cmp_ok(time - $t0, '<', 10, 'woken by the notification, not by --recheck');
is(query("SELECT lease_owner FROM jq_jobs WHERE id = $fast"), 'listener', 'the listener ran it');
is(query("SELECT state FROM jq_jobs WHERE id = $other"), 'ready', 'no worker of queue other: its job waits');
query("SELECT jq_cancel($other)");

# a delayed job: the scheduler notifies the listener when it comes due
my $delayed = query("SELECT jq_enqueue_shell(command => 'true', queue => 'fast', run_at => now() + interval '2 seconds')");
$t0 = time;
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $delayed"), 'the delayed job ran');
cmp_ok(time - $t0, '<', 10, 'woken when it came due, not by --recheck');
is(query("SELECT started_at >= run_at FROM jq_jobs WHERE id = $delayed"), 't', 'not before its run_at');

###########################################################################
# 2. kill -9 of a worker mid-job
###########################################################################

my $slow = query(qq{SELECT jq_enqueue_shell(command => 'echo \$\$ > $dir/leader_\$JQ_ATTEMPT; sleep 3; echo \$JQ_JOB_ID >> $dir/killed', queue => 'slow')});
start_worker('victim', '--queue', 'slow', '--lease', 1, '--recheck', 1);
my $leader = wait_for_pid_file("$dir/leader_1");
ok($leader, 'the job started under the victim');
kill 'KILL', $workers{victim};
is(wait_worker('victim'), 'signal 9', 'the victim was killed');
ok(wait_dead($leader), "the job's process died with its worker");
start_worker('heir', '--queue', 'slow', '--lease', 1, '--recheck', 1);
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $slow"), 'the heir ran the job after the lease expired');
is( query("SELECT attempts || ' ' || lease_owner || ' ' || (errors->0->>'message') FROM jq_jobs WHERE id = $slow"),
	'2 heir lease expired', 'second attempt, by the heir, after the first lease expired');
check_runs('kill -9', "$dir/killed", $slow);
is(stop_worker('heir'), 0, 'the heir stopped');

###########################################################################
# 3. the server restarts under running workers
###########################################################################

query(qq{CREATE TABLE restart AS
	SELECT jq_enqueue_shell(command => 'sleep 0.02; echo \$JQ_JOB_ID >> $dir/restart') AS id
	FROM generate_series(1, 400)});
start_worker("restart$_", '--concurrency', 4, '--lease', 2, '--recheck', 1) for 1 .. 2;
ok(wait_query("SELECT count(*) >= 40 FROM jq_jobs WHERE id IN (SELECT id FROM restart) AND state = 'succeeded'"),
	'the workers are running jobs');
$node->restart;
ok(wait_query("SELECT count(*) = 400 FROM jq_jobs WHERE id IN (SELECT id FROM restart) AND state = 'succeeded'"),
	'after the restart the workers carried on to the last job');
check_runs('restart', "$dir/restart", 'SELECT id FROM restart');
for my $name ('restart1', 'restart2', 'listener')
{
	like(worker_log($name), qr/connection failed.*connecting again.*connected to database/s,
		"$name lost its connection and connected again");
}
$fast = query("SELECT jq_enqueue_shell(command => 'true', queue => 'fast')");
$t0 = time;
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $fast"), 'the listener takes jobs after the restart');
cmp_ok(time - $t0, '<', 10, 'woken by a notification again');
is(stop_worker($_), 0, "$_ stopped") for 'restart1', 'restart2', 'listener';

###########################################################################
# 4. SIGTERM and SIGINT
###########################################################################

# a running job finishes; nothing more is claimed
my $finishing = query(qq{SELECT jq_enqueue_shell(command => 'echo \$\$ > $dir/finishing; sleep 1; echo done >> $dir/finished', queue => 'stop')});
start_worker('graceful', '--queue', 'stop', '--lease', 1);
ok(wait_for_pid_file("$dir/finishing"), 'a job is running');
kill 'TERM', $workers{graceful};
sleep 0.2;
my $later = query("SELECT jq_enqueue_shell(command => 'true', queue => 'stop')");
is(wait_worker('graceful'), 0, 'after SIGTERM the worker exits 0 once the job is done');
is(query("SELECT state FROM jq_jobs WHERE id = $finishing"), 'succeeded', 'the running job succeeded');
is(slurp_file("$dir/finished"), "done\n", 'it ran to its end');
is(query("SELECT state FROM jq_jobs WHERE id = $later"), 'ready', 'no job was claimed after SIGTERM');
query("SELECT jq_cancel($later)");

# at the end of the grace the job is stopped and recorded, to be retried
my $long = query(qq{SELECT jq_enqueue_shell(command => 'echo \$\$ > $dir/long; sleep 60', queue => 'stop')});
start_worker('short_grace', '--queue', 'stop', '--lease', 1, '--shutdown-grace', 1, '--kill-grace', 1);
my $long_pid = wait_for_pid_file("$dir/long");
ok($long_pid, 'a long job is running');
$t0 = time;
kill 'TERM', $workers{short_grace};
is(wait_worker('short_grace'), 0, 'the worker exits 0 after stopping the job');
cmp_ok(time - $t0, '<', 10, 'within the shutdown grace and the kill grace');
ok(wait_dead($long_pid), "the job's process is gone");
is( query("SELECT state IN ('ready', 'retrying') AND attempts = 1 FROM jq_jobs WHERE id = $long"),
	't', 'the job is to be retried');
like(query("SELECT last_error FROM jq_jobs WHERE id = $long"),
	qr/the worker shut down before the job ended; it was stopped \(killed by signal 15/,
	'its error says the worker stopped it');
query("SELECT jq_cancel($long)");

# a second SIGINT kills the jobs at once, even those that ignore SIGTERM
my $stubborn = query(qq{SELECT jq_enqueue_shell(command => 'trap "" TERM INT; sleep 60 & echo \$! > $dir/stubborn; wait', queue => 'stop')});
start_worker('interrupted', '--queue', 'stop', '--lease', 1);
my $stubborn_pid = wait_for_pid_file("$dir/stubborn");
ok($stubborn_pid, 'a job that ignores SIGTERM is running');
kill 'INT', $workers{interrupted};
sleep 0.3;
ok(process_alive($stubborn_pid), 'one SIGINT lets it run');
$t0 = time;
kill 'INT', $workers{interrupted};
is(wait_worker('interrupted', 5), 1, 'a second SIGINT makes the worker exit 1');
cmp_ok(time - $t0, '<', 2, 'at once');
ok(wait_dead($stubborn_pid), "the job's processes were killed");
like(worker_log('interrupted'), qr/second stop signal/, 'the worker says why it exited');
query("SELECT jq_cancel($stubborn)");

###########################################################################
# 5. timeouts and processes left behind
###########################################################################

start_worker('timeouts', '--queue', 'timeouts', '--lease', 1, '--kill-grace', 1);
my $timeout = query(qq{SELECT jq_enqueue_shell(
	command => 'sleep 61 & echo \$! > $dir/child; (sleep 62 & echo \$! > $dir/grandchild); sleep 63',
	queue => 'timeouts', timeout => '1s', max_attempts => 1)});
my ($child, $grandchild) = (wait_for_pid_file("$dir/child"), wait_for_pid_file("$dir/grandchild"));
ok($child && $grandchild, 'the job started a child and an orphaned grandchild');
ok(wait_query("SELECT state = 'failed' FROM jq_jobs WHERE id = $timeout"), 'the job timed out');
like(query("SELECT last_error FROM jq_jobs WHERE id = $timeout"),
	qr/^job exceeded its timeout of 1000 ms and was stopped \(killed by signal 15/,
	'its error says so');
ok(wait_dead($child), 'its child was killed');
ok(wait_dead($grandchild), 'its grandchild was killed');

my $background = query(qq{SELECT jq_enqueue_shell(
	command => 'sleep 64 & echo \$! > $dir/background; echo started', queue => 'timeouts')});
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $background"), 'a job that leaves a process behind succeeded');
ok(wait_dead(wait_for_pid_file("$dir/background")), 'what it left running was killed when it exited');
is(query("SELECT result->>'stdout' FROM jq_jobs WHERE id = $background"), "started\n", 'its output was kept');
is(stop_worker('timeouts'), 0, 'the worker stopped');

###########################################################################
# 6. SQL jobs
###########################################################################

query(q{CREATE TABLE effects (k int NOT NULL); CREATE SEQUENCE first_try});
my $shell_job = query("SELECT jq_enqueue_shell(command => 'true', queue => 'sql')");
query(q{CREATE TABLE sql_jobs AS
	SELECT jq_enqueue(format('INSERT INTO effects VALUES (%s)', n), queue => 'sql') AS id
	FROM generate_series(1, 100) n});
start_worker('sql', '--queue', 'sql', '--kinds', 'sql', '--concurrency', 2, '--lease', 1, '--recheck', 1);
ok(wait_query("SELECT count(*) = 100 FROM jq_jobs WHERE id IN (SELECT id FROM sql_jobs) AND state = 'succeeded'"),
	'100 SQL jobs succeeded');
is(query(q{SELECT count(*) || ' ' || count(DISTINCT k) FROM effects}), '100 100', 'each committed its effect once');
is(query("SELECT state FROM jq_jobs WHERE id = $shell_job"), 'ready', 'a worker of SQL jobs leaves shell jobs alone');
query("SELECT jq_cancel($shell_job)");

my $error = query(q{SELECT jq_enqueue('INSERT INTO effects VALUES (1001); SELECT 1/0', queue => 'sql', max_attempts => 1)});
ok(wait_query("SELECT state = 'failed' FROM jq_jobs WHERE id = $error"), 'a failing SQL job failed');
is(query("SELECT last_error FROM jq_jobs WHERE id = $error"), 'division by zero', 'with its error');
is(query('SELECT count(*) FROM effects WHERE k = 1001'), 0, 'and left no effect');

my $commits = query(q{SELECT jq_enqueue('INSERT INTO effects VALUES (1002); COMMIT', queue => 'sql')});
ok(wait_query("SELECT state = 'failed' FROM jq_jobs WHERE id = $commits"), 'a job that commits itself failed');
like(query("SELECT last_error FROM jq_jobs WHERE id = $commits"),
	qr/^a job cannot run transaction control statements/, 'with the reason');
is(query('SELECT count(*) FROM effects WHERE k = 1002'), 0, 'and no effect');

# a timeout stops the job in the server; its effect is rolled back
my $timed_out = query(q{SELECT jq_enqueue('INSERT INTO effects VALUES (1003); SELECT pg_sleep(30)',
										  queue => 'sql', timeout => '1 second', max_attempts => 1)});
ok(wait_query("SELECT state = 'failed' FROM jq_jobs WHERE id = $timed_out"), 'a job past its timeout failed');
is(query("SELECT last_error_timeout FROM jq_jobs WHERE id = $timed_out"), 't', 'as timed out');
is(query('SELECT count(*) FROM effects WHERE k = 1003'), 0, 'its effect was rolled back');

# a job runs as the role that enqueued it, not as the worker's role
query(q{CREATE ROLE sql_owner; GRANT INSERT ON effects TO sql_owner});
my $owned = query(q{SET ROLE sql_owner;
	SELECT jq_enqueue('INSERT INTO effects SELECT 1006 WHERE current_user = ''sql_owner''',
					  queue => 'sql')});
my $denied = query(q{SET ROLE sql_owner;
	SELECT jq_enqueue('SELECT count(*) FROM pg_authid', queue => 'sql', max_attempts => 1)});
ok(wait_query("SELECT count(*) = 2 FROM jq_jobs WHERE id IN ($owned, $denied) AND state IN ('succeeded', 'failed')"),
	'jobs of another role ran');
is(query('SELECT count(*) FROM effects WHERE k = 1006'), 1, 'as that role');
like(query("SELECT state || ': ' || last_error FROM jq_jobs WHERE id = $denied"),
	qr/^failed: permission denied/, 'without the rights of the worker');

# the worker dies mid-job: nothing committed; the retry commits once
my $dies = query(q{SELECT jq_enqueue('INSERT INTO effects VALUES (1004); SELECT pg_sleep(CASE WHEN nextval(''first_try'') = 1 THEN 30 ELSE 0 END)', queue => 'sql')});
my $running = "SELECT pid FROM pg_stat_activity WHERE query LIKE '%jq_run_sql%'
			   AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()";
ok(wait_query("SELECT count(*) = 1 FROM ($running) r"), 'a SQL job is running');
kill 'KILL', $workers{sql};
is(wait_worker('sql'), 'signal 9', 'its worker was killed');
# the server finds out when it next talks to the client; do not wait for that
query("SELECT pg_terminate_backend(pid) FROM ($running) r");
is(query('SELECT count(*) FROM effects WHERE k = 1004'), 0, 'nothing of the job committed');
start_worker('sql_heir', '--queue', 'sql', '--kinds', 'sql', '--lease', 1, '--recheck', 1);
ok(wait_query("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $dies"), 'another worker ran the job again');
is(query("SELECT attempts FROM jq_jobs WHERE id = $dies"), 2, 'in a second attempt');
is(query('SELECT count(*) FROM effects WHERE k = 1004'), 1, 'its effect committed once');

# one job's session state does not reach the next job on the same connection
my @state = split /\n/, query(q{SELECT jq_enqueue(c, queue => 'sql') FROM unnest(ARRAY[
	'SET application_name = ''leaked''; CREATE TEMP TABLE leak (k int)',
	'INSERT INTO effects SELECT 1005 WHERE current_setting(''application_name'') <> ''leaked'' AND to_regclass(''pg_temp.leak'') IS NULL'
	]) c});
ok(wait_query("SELECT count(*) = 2 FROM jq_jobs WHERE id IN ($state[0], $state[1]) AND state = 'succeeded'"),
	'a job that changes its session, then another');
is(query('SELECT count(*) FROM effects WHERE k = 1005'), 1, 'the second saw none of the changes of the first');
is(stop_worker('sql_heir'), 0, 'the worker stopped');

is(query("SELECT count(*) FROM jq_jobs WHERE state IN ('ready', 'running')"), 0, 'no job left behind');
$node->stop;
done_testing();
