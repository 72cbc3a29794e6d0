# The daily full sync: a group of 20 jobs that depend on each other, enqueued
# with jq_enqueue_group, runs in topological order across a server restart
# in the middle.  Every job succeeds, its effect is committed once, and each
# one started only after all its dependencies had finished.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $node = job_queue_node('workflow', conf => q{
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_queue;
CREATE TABLE synced (job text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
});

# extract each of 5 sources, load each, check each load with its
# neighbour's, report on pairs of checks, publish once every report is done
my %deps;
for my $i (1 .. 5)
{
	$deps{"extract_$i"} = [];
	$deps{"load_$i"} = ["extract_$i"];
	$deps{"check_$i"} = [ "load_$i", 'load_' . ($i % 5 + 1) ];
}
$deps{"report_$_"} = [ "check_$_", 'check_' . ($_ + 1) ] for 1 .. 4;
$deps{publish} = [ map { "report_$_" } 1 .. 4 ];
is(scalar(keys %deps), 20, 'the workflow has 20 jobs');

# listed in reverse, so that the group has to order them itself
my @jobs;
for my $name (reverse sort keys %deps)
{
	my $after = join(', ', map { qq{"$_"} } @{ $deps{$name} });
	push @jobs,
	  qq({"name": "$name", "depends_on": [$after], "command": )
	  . qq("SELECT pg_sleep(0.25); INSERT INTO synced (job) VALUES ('$name')"});
}
my $jobs = join(",\n", @jobs);
my $enqueued = $node->safe_psql(
	'postgres', qq{
SELECT count(*) FROM jq_enqueue_group(\$json\$[$jobs]\$json\$, 'daily full sync')});
is($enqueued, 20, 'the group was enqueued');
my $group = $node->safe_psql('postgres',
	q{SELECT id FROM jq_groups WHERE name = 'daily full sync'});

# restart once the first jobs have finished, with more waiting
$node->poll_query_until('postgres',
	"SELECT succeeded >= 4 FROM jq_groups WHERE id = $group")
  or die 'the first jobs did not finish';
my ($done, $waiting) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT succeeded, waiting FROM jq_groups WHERE id = $group");
$node->restart;
cmp_ok($done, '<', 20, "restarted in the middle ($done jobs had succeeded)");
cmp_ok($waiting, '>', 0, "jobs were waiting for others at the restart ($waiting)");

ok( $node->poll_query_until(
		'postgres', "SELECT state <> 'running' FROM jq_groups WHERE id = $group"),
	'the group finished after the restart');
is( $node->safe_psql(
		'postgres', qq{
SELECT total || ' ' || succeeded || ' ' || state || ' ' || (finished_at IS NOT NULL)
FROM jq_groups WHERE id = $group}),
	'20 20 succeeded true',
	'every job of the group succeeded');
is($node->safe_psql('postgres', 'SELECT count(*) FROM synced'),
	20, 'every job committed its effect once');

# every job started after each of its dependencies finished, and its
# effect came after theirs
my $order = $node->safe_psql(
	'postgres', qq{
SELECT j.id, j.command, j.started_at, d.id, d.finished_at
FROM jq_jobs j, unnest(j.depends_on) AS dep(id) JOIN jq_jobs d USING (id)
WHERE j.group_id = $group AND j.started_at < d.finished_at});
is($order, '', 'no job started before one of its dependencies finished');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM jq_jobs j, unnest(j.depends_on) AS dep(id)
JOIN jq_jobs d USING (id)
WHERE j.group_id = $group AND j.state = 'succeeded' AND d.state = 'succeeded'}),
	27,
	'every dependency was recorded');

my %effect_at = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres',
	q{SELECT job, extract(epoch FROM at) FROM synced});
my @late = grep {
	my $job = $_;
	grep { $effect_at{$_} >= $effect_at{$job} } @{ $deps{$job} }
} keys %deps;
is(scalar(@late), 0, 'each effect came after those of its dependencies')
  or diag "out of order: @late";

is($node->safe_psql('postgres', 'SELECT count(*) FROM jq.dependency'),
	0, 'nothing is left waiting');

$node->stop;
done_testing();
