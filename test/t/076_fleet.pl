# A fleet of jq_worker processes, each with its own --name, drains one
# queue of SQL and shell jobs while two of them are killed with kill -9 and
# a new one joins: every job ends succeeded, each SQL job's effect is there
# exactly once, and jq_jobs names the worker that ran each job.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $node = job_queue_node('fleet', conf => "jq.execute_in_server = off\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION job_queue;
CREATE TABLE effects (job integer NOT NULL);
SELECT jq_enqueue(format('INSERT INTO effects VALUES (%s); SELECT pg_sleep(0.002)', i),
				  queue => 'fleet')
FROM generate_series(1, 3000) i;
SELECT jq_enqueue_shell(command => 'sleep 0.01', queue => 'fleet') FROM generate_series(1, 300);
});
my $dsn = $node->connstr('postgres');
my %workers;
END
{
	kill 'KILL', values %workers;
}

sub join_fleet
{
	my ($name) = @_;
	$workers{$name} = start_jq_worker($name, '--dsn', $dsn, '--kinds', 'sql,shell',
		'--concurrency', '4', '--lease', '5', '--quiet');
}

sub finished
{
	return $node->safe_psql('postgres',
		q{SELECT count(*) FROM jq_jobs WHERE queue = 'fleet' AND state = 'succeeded'});
}

join_fleet("host-$_") for 1 .. 4;
ok(wait_until(sub { finished() >= 600 }), 'the fleet is draining the queue');
kill 'KILL', delete $workers{'host-2'};
ok(wait_until(sub { finished() >= 1800 }), 'it goes on without host-2');
kill 'KILL', delete $workers{'host-3'};
join_fleet('host-5');

ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 3300 FROM jq_jobs WHERE queue = 'fleet' AND state = 'succeeded'}),
	'every job succeeded');
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || count(DISTINCT job) FROM effects}),
	'3000 3000', 'each SQL job took effect exactly once');
ok($node->safe_psql('postgres',
	q{SELECT count(*) > 0 FROM jq_jobs WHERE queue = 'fleet' AND attempts > 1}),
	'jobs the killed workers held ran again once their leases expired');
my @names = split /\n/, $node->safe_psql('postgres',
	q{SELECT DISTINCT lease_owner FROM jq_jobs WHERE queue = 'fleet' ORDER BY 1});
ok(@names >= 4 && !grep({ !/^host-[1-5]$/ } @names),
	'jq_jobs names the worker of each job: ' . join(' ', @names));
ok(grep({ $_ eq 'host-5' } @names), 'the worker that joined late took jobs');
is(jq_worker_log('host-1') =~ tr/\n//, 2, '--quiet: a worker logs its start and its connection only');

kill 'TERM', values %workers;
is(wait_child($workers{$_}), 0, "$_ stopped cleanly") for sort keys %workers;
%workers = ();

done_testing();
