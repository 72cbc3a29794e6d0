# Monitoring with real sessions: progress seen by other sessions before the
# job commits (SQL and shell jobs), jq_wait woken by the commit of an
# outcome and not by one that rolls back, jq_metrics parsed as Prometheus
# text, counts of jobs recounted after a restart, and history pruned by
# dropping whole partitions.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use JobQueueTest;

my $node = job_queue_node('monitoring', conf => q{
jq.retry_backoff_base = 50ms
jq.retry_backoff_cap = 200ms
jq.history_retention = 16s
});
$node->safe_psql('postgres', q{
CREATE EXTENSION job_queue;
SELECT jq_configure_queue('ext', external_only => true);
});

# a psql session that reads statements from $$in as the test writes them
sub session
{
	my ($in, $out) = @_;
	return IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', $in, '>', $out, '2>', $out);
}

# write $sql to a session, then wait until its output matches $re
sub send_and_wait
{
	my ($h, $in, $out, $sql, $re) = @_;
	$$in .= $sql;
	wait_until(sub { $h->pump_nb; $$out =~ $re }) or die "no $re in: $$out";
}

# once job $id has finished: the state and last progress jq_wait returns and
# jq_jobs keeps are $expected
sub last_progress_is
{
	my ($id, $expected, $name) = @_;
	my $columns = q{state, progress->>'fraction', progress->>'message'};
	is($node->safe_psql('postgres', "SELECT $columns FROM jq_wait($id, '60s')"),
		$expected, 'jq_wait returns the last progress');
	is($node->safe_psql('postgres', "SELECT $columns FROM jq_jobs WHERE id = $id"),
		$expected, $name);
}

# ---------------------------------------------------------------------
# progress of a SQL job, seen before it commits, kept when it ends
my $sql_job = $node->safe_psql('postgres', q{
SELECT jq_enqueue($$SELECT jq_progress(0.25, 'a quarter', '{"rows": 10}');
				   SELECT pg_sleep(3);
				   SELECT jq_progress(0.75, 'three quarters')$$)});
ok( wait_until(sub {
		$node->safe_psql('postgres',
			"SELECT progress->>'fraction' FROM jq_running WHERE id = $sql_job") eq '0.25';
	}),
	'another session sees the progress of a running SQL job');
is( $node->safe_psql('postgres', qq{
SELECT j.state, r.executor_pid IS NOT NULL, r.progress->>'message', r.progress->'data'->>'rows'
FROM jq_jobs j JOIN jq_running r USING (id) WHERE id = $sql_job}),
	'running|t|a quarter|10', 'before the job has committed, from its executor');
last_progress_is($sql_job, 'succeeded|0.75|three quarters', 'the last progress is kept in jq_jobs');

# ---------------------------------------------------------------------
# progress of an in-server shell job, through its JQ_PROGRESS_FILE
my $shell_job = $node->safe_psql('postgres', q{
SELECT jq_enqueue_shell($$echo "0.5 halfway" >> "$JQ_PROGRESS_FILE"; sleep 3;
						 echo "90% nearly" >> "$JQ_PROGRESS_FILE"; printf partial >> "$JQ_PROGRESS_FILE"$$)});
ok( wait_until(sub {
		$node->safe_psql('postgres',
			"SELECT progress->>'message' FROM jq_running WHERE id = $shell_job") eq 'halfway';
	}),
	'a shell job reports progress through its progress file');
last_progress_is($shell_job, 'succeeded|0.9|nearly', 'its last complete line is kept when it ends');

# ---------------------------------------------------------------------
# jq_wait wakes when the outcome commits, not when it rolls back
my $job = $node->safe_psql('postgres', q{SELECT jq_enqueue('SELECT 1', queue => 'ext')});
my ($win, $wout, $xin, $xout) = ('', '', '', '');
my $worker = session(\$win, \$wout);
send_and_wait($worker, \$win, \$wout,
	"SELECT id FROM jq_dequeue('ext');\nBEGIN;\nSELECT jq_complete($job, '{\"n\": 1}');\nSELECT 'held';\n",
	qr/held/);

my $waiter = session(\$xin, \$xout);
$xin .= "SELECT 'waiting';\nSELECT state || ' ' || result::text FROM jq_wait($job, '120s');\n";
wait_until(sub { $waiter->pump_nb; $xout =~ /waiting/ }) or die "waiter did not start";
ok( wait_until(sub {
		$node->safe_psql('postgres', q{
SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity
WHERE query LIKE '%jq_wait(%' AND pid <> pg_backend_pid()}) eq 'Extension:Extension';
	}),
	'the waiter sleeps on its condition variable');
sleep(1);
$waiter->pump_nb;
unlike($xout, qr/succeeded/, 'it does not return while the outcome is not committed');

send_and_wait($worker, \$win, \$wout, "ROLLBACK;\nSELECT 'rolled back';\n", qr/rolled back/);
sleep(1);
$waiter->pump_nb;
unlike($xout, qr/succeeded/, 'an outcome that rolls back does not end the wait');

my $committed_at = time();
send_and_wait($worker, \$win, \$wout,
	"SELECT jq_complete($job, '{\"n\": 2}');\nSELECT 'committed';\n", qr/committed/);
ok(wait_until(sub { $waiter->pump_nb; $xout =~ /succeeded/ }, 30), 'the commit ends the wait');
my $woke_after = time() - $committed_at;
like($xout, qr/succeeded \[\{"n": 2\}\]|succeeded \{"n": 2\}/, 'with the committed outcome');
cmp_ok($woke_after, '<', 5, 'at once, not after a polling interval');
$win .= "\\q\n";
$xin .= "\\q\n";
$worker->finish;
$waiter->finish;

# a wait that times out
my $stays = $node->safe_psql('postgres', q{SELECT jq_enqueue('SELECT 1', queue => 'ext')});
my $t0 = time();
is($node->safe_psql('postgres', "SELECT jq_wait($stays, '1s') IS NULL"), 't',
	'jq_wait returns NULL at its timeout');
my $waited = time() - $t0;
cmp_ok($waited, '>=', 0.9, 'after the timeout');
cmp_ok($waited, '<', 10, 'and not much later');

# ---------------------------------------------------------------------
# jq_metrics is valid Prometheus text
my $metrics = $node->safe_psql('postgres', 'SELECT jq_metrics()');
my $metrics_file = $node->basedir . '/metrics.txt';
PostgreSQL::Test::Utils::append_to_file($metrics_file, "$metrics\n");
my ($stdout, $stderr);
my $parsed = IPC::Run::run(
	[ '/usr/bin/python3', '-c', q{
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    families[f.name] = f
    if f.type == 'histogram':
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))
            series.setdefault(key, {'buckets': [], 'count': None})
            if s.name.endswith('_bucket'):
                series[key]['buckets'].append((float(s.labels['le']), s.value))
            elif s.name.endswith('_count'):
                series[key]['count'] = s.value
        for key, v in series.items():
            values = [c for _, c in sorted(v['buckets'])]
            assert values == sorted(values), ('buckets not cumulative', f.name, key)
            assert values[-1] == v['count'], ('+Inf is not the count', f.name, key)
for name, f in sorted(families.items()):
    total = sum(s.value for s in f.samples if s.name.endswith('_total')
                and s.labels.get('state') == 'succeeded')
    print(name, f.type, int(total))
}, $metrics_file ],
	'>', \$stdout, '2>', \$stderr);
ok($parsed, 'the Prometheus parser reads jq_metrics') or diag($stderr);
like($stdout, qr/^jq_job_pickup_seconds histogram/m, 'pickup latency is a histogram');
like($stdout, qr/^jq_job_run_seconds histogram/m, 'run time is a histogram');
like($stdout, qr/^jq_jobs gauge/m, 'jobs by state are a gauge');
like($stdout, qr/^jq_jobs_finished counter (\d+)/m, 'finished jobs are a counter');
my ($succeeded) = $stdout =~ /^jq_jobs_finished counter (\d+)/m;
is($succeeded, 3, 'counting the three jobs that succeeded');

# ---------------------------------------------------------------------
# the counts of jobs in each state survive a restart: they are counted anew
$node->safe_psql('postgres', q{
SELECT jq_enqueue('SELECT 1', queue => 'later', run_at => now() + interval '1 hour')
FROM generate_series(1, 3);
SELECT jq_enqueue('SELECT 1', queue => 'later', depends_on => ARRAY[id])
FROM jq_jobs WHERE queue = 'later' AND state = 'scheduled' LIMIT 1;
});
my $counts = q{SELECT waiting, scheduled, ready FROM jq_stats WHERE queue = 'later'};
is($node->safe_psql('postgres', $counts), '1|3|0', 'jq_stats counts waiting and scheduled jobs');
$node->restart;
ok(wait_until(sub { $node->safe_psql('postgres', $counts) eq '1|3|0' }),
	'and counts them again after a restart');

# ---------------------------------------------------------------------
# history is pruned by dropping whole partitions (retention 16s: partitions of 2s)
my $ids = $node->safe_psql('postgres', q{
SELECT string_agg(jq_enqueue('SELECT 1')::text, ',') FROM generate_series(1, 20)});
$node->safe_psql('postgres', "SELECT jq_wait(id, '60s') FROM unnest('{$ids}'::bigint[]) id");
my $parts = $node->safe_psql('postgres', qq{
SELECT string_agg(DISTINCT tableoid::regclass::text, ' ') FROM jq.job_history WHERE id IN ($ids)});
unlike($parts, qr/job_history_default/, "finished jobs are in the partitions of their second: $parts");
ok( wait_until(sub {
		$node->safe_psql('postgres', qq{
SELECT bool_and(to_regclass(p) IS NULL) FROM unnest(string_to_array('$parts', ' ')) p}) eq 't';
	}, 60),
	'once past the retention, their partitions are dropped');
is($node->safe_psql('postgres', "SELECT count(*) FROM jq_jobs WHERE id IN ($ids)"),
	'0', 'and the jobs are gone from jq_jobs');
my $next = $node->safe_psql('postgres', q{SELECT jq_enqueue('SELECT 1')});
is( $node->safe_psql('postgres', qq{
SELECT (jq_wait($next, '60s')).state;
SELECT tableoid::regclass::text <> 'jq.job_history_default' FROM jq.job_history WHERE id = $next}),
	"succeeded\nt", 'while the next jobs to finish find their partition made ahead');

$node->stop;
done_testing();
