# Executors commit their claims without waiting for the WAL flush, and write
# them to pg_stat_tmp/job_queue.<database oid>.<slot> instead.  A claim that
# a crash of the server lost is put back when the scheduler starts, and
# charged like a job cut off by the restart:
#
#  1. claim files written by hand while the server is down: the jobs they
#     name that are still ready get their attempt back and are charged;
#     claims that jq.job already reflects, files about an earlier jq.job
#     (the extension dropped and created again) and other databases' files
#     are left alone;
#  2. a job that crashes the server every time (kill -9 of its own backend)
#     ends failed after max_attempts, even though its claims are not
#     flushed before it crashes the server; the same for a shell job that
#     kills its executor.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

# a WAL writer this slow leaves the claims of a crashing job unflushed
my $node = job_queue_node('lost_claims', conf => q{
restart_after_crash = on
wal_writer_delay = '10s'
jq.execute_in_server = off
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
});
my $restart_reason = 'server restarted while the job was running';

# no executor runs until the restart
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

my ($once, $twice, $retried) = split /\n/, $node->safe_psql(
	'postgres', q{
	SELECT jq_enqueue('SELECT 1', max_attempts => 1);
	SELECT jq_enqueue('SELECT 2', max_attempts => 3);
	SELECT jq_enqueue('SELECT 3', max_attempts => 3);
});
# a job whose claim committed: its attempt is in jq.job already
$node->safe_psql('postgres',
	"UPDATE jq.job SET attempts = 1 WHERE id = $retried");
my $dboid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");
my $job_relid = $node->safe_psql('postgres', "SELECT 'jq.job'::regclass::oid");
$node->safe_psql('postgres', 'ALTER SYSTEM SET jq.execute_in_server = on');
$node->stop('fast');

# the files an executor writes: jq.job's oid and a count, then (id, attempt)
# pairs
sub write_claims
{
	my ($name, $relid, @claims) = @_;
	my $path = $node->data_dir . "/pg_stat_tmp/job_queue.$name";
	open(my $fh, '>:raw', $path) or die "could not write $path: $!";
	print $fh pack('L l', $relid, scalar(@claims));
	print $fh pack('q l l', $_->[0], $_->[1], 0) for @claims;
	close($fh);
}
write_claims("$dboid.14", $job_relid, [ $once, 1 ], [ $twice, 1 ]);
write_claims("$dboid.15", $job_relid, [ $retried, 1 ]);
write_claims("$dboid.13", $job_relid + 1, [ $retried, 2 ]);
write_claims('4294967290.0', $job_relid, [ $retried, 2 ]);

my $log_offset = -s $node->logfile;
$node->start;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 3 FROM jq_jobs WHERE state IN ('failed', 'succeeded')"),
	'the three jobs finished');
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts || ':' || coalesce(last_error, '') FROM jq_jobs WHERE id = $once"
	),
	"failed:1:$restart_reason",
	'a lost claim of a job with one attempt: charged, the job failed');
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts || ':' || jsonb_array_length(errors) FROM jq_jobs WHERE id = $twice"
	),
	'succeeded:2:1',
	'a lost claim of a job with attempts left: charged, then the job ran');
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts || ':' || coalesce(jsonb_array_length(errors), 0) FROM jq_jobs WHERE id = $retried"
	),
	'succeeded:2:0',
	'a claim jq.job already shows, or a file about another jq.job, is not charged');
like(
	slurp_file($node->logfile, $log_offset),
	qr/put back the claims of 2 jobs that a crash lost/,
	'the scheduler says what it put back');
ok( !grep({ -e $node->data_dir . "/pg_stat_tmp/job_queue.$dboid.$_" } 13 .. 15),
	'the files of the database are removed');
ok(-e $node->data_dir . "/pg_stat_tmp/job_queue.4294967290.0",
	"another database's file is left alone");

# A job that kills its own backend: the postmaster restarts the cluster
# each time, before the claim reaches the disk.
$log_offset = -s $node->logfile;
my $crasher = $node->safe_psql('postgres', q{
	SELECT jq_enqueue($$COPY (SELECT 1) TO PROGRAM 'kill -9 $PPID'$$, max_attempts => 2)});
ok(wait_for_job_state($node, 'postgres', $crasher, 'failed'),
	'the job that crashes the server ends failed');
is( $node->safe_psql(
		'postgres',
		"SELECT attempts || ':' || last_error FROM jq_jobs WHERE id = $crasher"),
	"2:$restart_reason",
	'after its two attempts');
sleep(2);
my $log = slurp_file($node->logfile, $log_offset);
my $crashes = () = $log =~ /terminated by signal 9/g;
is($crashes, 2, 'it crashed the server twice, no more');
is( $node->safe_psql(
		'postgres',
		"SELECT state || ':' || attempts FROM jq_jobs WHERE id = $crasher"),
	'failed:2',
	'and is not run again');
note('claims put back after the crashes: '
	  . (() = $log =~ /put back the claims/g));

# The same with a shell job, whose executor never waits for its claim's WAL:
# its program kills the executor that started it
$log_offset = -s $node->logfile;
my $shell_crasher = $node->safe_psql('postgres', q{
	SELECT jq_enqueue_shell('kill -9 $PPID', max_attempts => 2)});
ok(wait_for_job_state($node, 'postgres', $shell_crasher, 'failed'),
	'the shell job that crashes the server ends failed');
is( $node->safe_psql(
		'postgres',
		"SELECT attempts || ':' || last_error FROM jq_jobs WHERE id = $shell_crasher"),
	"2:$restart_reason",
	'after its two attempts');
sleep(2);
$log = slurp_file($node->logfile, $log_offset);
$crashes = () = $log =~ /terminated by signal 9/g;
is($crashes, 2, 'it crashed the server twice, no more');

$node->stop;
done_testing();
