# A database's scheduler takes a last look for due jobs before it leaves:
# a ready job that no executor serves and no request names is run then, not
# left until the next commit in the database.  Here that job is a shell job
# written into jq.job directly, which wakes nobody, while the database has
# only an SQL executor, whose claims do not see it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $node = job_queue_node('last_look', conf => "jq.executor_idle_timeout = '2s'\n");
$node->safe_psql('postgres', 'CREATE DATABASE jobs');
$node->safe_psql('jobs', 'CREATE EXTENSION job_queue');

# an SQL job through the API brings the scheduler and an SQL executor
my $first = $node->safe_psql('jobs', 'SELECT jq_enqueue($$SELECT 1$$)');
ok(wait_for_job_state($node, 'jobs', $first, 'succeeded'), 'an SQL job enqueued through the API ran');
is(worker_count($node, 'scheduler', 'jobs'), '1', 'the database has its scheduler');
is(worker_count($node, 'shell executor', 'jobs'), '0', 'and no shell executor');

# written past the API while the SQL executor idles: no commit wakes anyone
my $direct = $node->safe_psql('jobs', q{
	INSERT INTO jq.job (queue, kind, command, priority, run_at, max_attempts, owner)
	VALUES ('default', 'shell', 'true', 0, now(), 1,
			(SELECT oid FROM pg_roles WHERE rolname = current_user))
	RETURNING id});

# the idle SQL executor leaves, then the scheduler looks once more before going
ok(wait_for_job_state($node, 'jobs', $direct, 'succeeded'),
	'the shell job no commit announced ran when the scheduler was about to leave');
ok(wait_for_worker_count($node, 'scheduler', 0, 'jobs'),
	'with nothing left to do, the scheduler leaves');

$node->stop;
done_testing();
