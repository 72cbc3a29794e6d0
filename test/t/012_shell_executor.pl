# The shell executors of a database, with jq.shell_executors_per_database = 3:
#
#  1. six shell jobs of two seconds run three at a time, never more;
#  2. while every shell executor is busy with a long job, a batch of SQL
#     jobs still finishes at once and further shell jobs wait; cancelling a
#     long job kills all its processes and frees its executor;
#  3. a shell job inherits no file descriptor from the server: stdin is
#     /dev/null, stdout and stderr are pipes, and nothing else is open,
#     whether it runs under /bin/sh or as a program of its own.
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

my $node = job_queue_node('shell_executor', conf => q{
jq.shell_executors_per_database = 3
jq.shell_kill_grace = 1s
});
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue; CREATE TABLE sql_done (n int)');
# executors start for jobs: the scheduler has found the extension
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) FROM jq_executors WHERE datname = 'postgres'", '1'),
	'the scheduler found the extension');

my $dir = PostgreSQL::Test::Utils::tempdir;
my @all_pids;    # every process a job started, killed at the end if left

sub id_list { return '(' . join(',', @_) . ')' }

###########################################################################
# 1. three at a time
###########################################################################

my @ids1 = split /\n/,
  $node->safe_psql('postgres',
	"SELECT jq_enqueue_shell('sleep 2') FROM generate_series(1, 6)");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) FILTER (WHERE state = 'succeeded') = 6 FROM jq_jobs WHERE id IN "
		  . id_list(@ids1)),
	'concurrency: the six jobs succeeded');
# how many jobs ran at the moment each one started
my $in1 = id_list(@ids1);
my ($max_running, $min_running, $span) = split /\|/, $node->safe_psql(
	'postgres', qq{
	SELECT max(n), min(n), extract(epoch FROM max(f) - min(s))
	FROM (SELECT j.started_at AS s, j.finished_at AS f,
				 (SELECT count(*) FROM jq_jobs o
				  WHERE o.id IN $in1
					AND o.started_at <= j.started_at AND o.finished_at > j.started_at) AS n
		  FROM jq_jobs j WHERE j.id IN $in1) r});
note "jobs running at each start: $min_running to $max_running, all six in $span s";
is($max_running, 3, 'concurrency: three jobs ran at once, never more');
cmp_ok($span, '>=', 4, 'concurrency: they ran in two rounds of two seconds');
cmp_ok($span, '<', 6.5, 'concurrency: the second round started as the first ended');

###########################################################################
# 2. SQL jobs while the shell executors are busy
###########################################################################

my @tags = map { "busy_$_" } 1 .. 3;
my %id_of = map {
	$_ => $node->safe_psql('postgres',
		    'SELECT jq_enqueue_shell($cmd$'
		  . long_shell_command($_)
		  . "\$cmd\$, working_dir => '$dir')")
} @tags;
my %pids_of = map { $_ => [ job_pids($dir, $_) ] } @tags;
push @all_pids, map { @$_ } values %pids_of;
my $in2 = id_list(values %id_of);
is($node->safe_psql('postgres', "SELECT count(*) FROM jq_jobs WHERE state = 'running' AND id IN $in2"),
	3, 'busy: three long shell jobs run');
my $waiting = $node->safe_psql('postgres', "SELECT jq_enqueue_shell('echo waited')");

my $t0 = time();
my $sql_ids = $node->safe_psql('postgres',
	"SELECT array_to_string(jq_enqueue_bulk(array_agg(format('INSERT INTO sql_done VALUES (%s)', n))), ',') FROM generate_series(1, 500) n"
);
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 500 FROM jq_jobs WHERE state = 'succeeded' AND id IN ($sql_ids)"),
	'busy: 500 SQL jobs succeeded');
my $sql_s = time() - $t0;
note sprintf('500 SQL jobs took %.2f s', $sql_s);
cmp_ok($sql_s, '<', 5, 'busy: promptly');
is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT n) FROM sql_done'),
	'500 500', 'busy: each SQL job took effect once');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(state::text, ' ' ORDER BY id) FROM jq_jobs WHERE id IN $in2 OR id = $waiting"),
	'running running running ready',
	'busy: the long shell jobs still run, and another shell job waits for an executor');

# the job's own processes (/bin/sh, sleep) hold stdin, stdout and stderr only
my @leaked;
for my $pid (map { @$_ } values %pids_of)
{
	opendir(my $dh, "/proc/$pid/fd") or die "cannot read /proc/$pid/fd: $!";
	my $fds = join(' ', sort { $a <=> $b } grep { /^\d+$/ } readdir($dh));
	closedir($dh);
	push @leaked, "$pid: $fds" if $fds ne '0 1 2';
}
is(join('; ', @leaked), '', "busy: the jobs' processes have only fds 0, 1 and 2 open");

# cancelling one frees its executor for the waiting job
is($node->safe_psql('postgres', "SELECT jq_cancel($id_of{busy_1})"),
	't', 'busy: cancel one long job');
is(join(' ', live_after(5, $pids_of{busy_1})), '',
	'busy: no process of the cancelled job is left');
ok( $node->poll_query_until(
		'postgres',
		"SELECT string_agg(state::text, ' ' ORDER BY id) FROM jq_jobs WHERE id IN ($id_of{busy_1}, $waiting)",
		'cancelled succeeded'),
	'busy: the cancelled job ends cancelled, and the waiting job ran');
$node->safe_psql('postgres', "SELECT jq_cancel(id) FROM jq_jobs WHERE id IN $in2");
is(join(' ', live_after(5, \@all_pids)), '', 'busy: no process of the long jobs is left');

###########################################################################
# 3. no file descriptor leaks into a job
###########################################################################

# what ls -l /proc/self/fd says, as "fd target" (pipe:[N] as "pipe"); ls
# itself holds one more, on the directory it lists
my $fd_list = q{
	SELECT string_agg(regexp_replace(
			   regexp_replace(m[1] || ' ' || m[2], 'pipe:\[\d+\]', 'pipe'),
			   '/proc/\d+/fd', '/proc/self/fd'), ', ')
	FROM jq_jobs,
		 regexp_matches(result->>'stdout', '(\d+) -> (\S+)', 'g') AS m
	WHERE id = };
my $expected_fds = '0 /dev/null, 1 pipe, 2 pipe, 3 /proc/self/fd';
my $argv_job = $node->safe_psql('postgres',
	"SELECT jq_enqueue_shell(argv => ARRAY['ls', '-l', '/proc/self/fd'])");
my $sh_job = $node->safe_psql('postgres',
	"SELECT jq_enqueue_shell('ls -l /proc/self/fd')");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) FILTER (WHERE state = 'succeeded') = 2 FROM jq_jobs WHERE id IN ($argv_job, $sh_job)"),
	'fds: the jobs listing their fds succeeded');
is($node->safe_psql('postgres', $fd_list . $argv_job), $expected_fds,
	'fds: a program run without a shell has only stdin, stdout and stderr');
is($node->safe_psql('postgres', $fd_list . $sh_job), $expected_fds,
	'fds: so has a program run by /bin/sh');
is(kill_leftovers(@all_pids), 0, 'no process of any job was left running');
$node->stop;
done_testing();
