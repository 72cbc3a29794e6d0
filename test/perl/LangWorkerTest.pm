# The tests of a worker in an application's language (Python, Node), run
# against a real server with real worker processes.  A test file names the
# command that starts its language's worker with the handlers of test/lang
# (add, boom, record, sleep: the same in every language) and the one that
# enqueues with its language's helpers; run_lang_worker_tests does the rest:
#
#  1. enqueue helpers: jobs commit or roll back with the caller's transaction;
#  2. a handler's return value is the job's result; an idle worker is woken
#     by NOTIFY (workers look for jobs on their own only every 10 minutes);
#  3. an exception fails the attempt: retried, then failed with the
#     exception's type, message and stack; Fatal fails the job at once;
#  4. a job that runs past its timeout is failed as timed out;
#  5. heartbeats keep the lease of a job that runs longer than the lease;
#  6. a cancelled running job: the handler is told, the job stays cancelled;
#  7. SIGTERM during a job: no new claim, the job finishes within the grace
#     period and is recorded once, the worker exits 0;
#  8. kill -9 of a worker mid-job: the job runs again elsewhere once its lease
#     has expired;
#  9. two workers, one of them without LISTEN, drain 2,000 jobs: each
#     handled exactly once;
# 10. a task no worker has a handler for stays ready, never attempted.
package LangWorkerTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(run_lang_worker_tests);

my %workers;    # name => pid

END
{
	kill 'KILL', values %workers;
}

# Arguments: name (of the node), worker => [command that starts a worker,
# without the options below], enqueue => [command that takes a DSN and
# enqueues with the helpers], stack => regex a failed job's error matches,
# env => { environment of both }.
sub run_lang_worker_tests
{
	my (%args) = @_;
	my $node = job_queue_node($args{name}, conf => q{
jq.retry_backoff_base = '50ms'
jq.retry_backoff_cap = '100ms'
});
	$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');
	my $dsn = $node->connstr('postgres');
	my $dir = PostgreSQL::Test::Utils::tempdir;
	my $events = "$dir/events";
	my %env = (%{ $args{env} // {} }, JQ_TEST_EVENTS => $events);

	my $query = sub { $node->safe_psql('postgres', shift) };
	my $wait_query = sub {
		my ($sql, $expected) = @_;
		return $node->poll_query_until('postgres', $sql, $expected // 't');
	};
	# lines of the events file: [what, id, attempt, worker]
	my $event_list = sub {
		return () unless -e $events;
		return map { [split ' '] } split /\n/, slurp_file($events);
	};
	my $count_events = sub {
		my ($what, $id) = @_;
		return scalar grep { $_->[0] eq $what && $_->[1] == $id } $event_list->();
	};
	my $wait_event = sub {
		my ($what, $id) = @_;
		return wait_until(sub { $count_events->($what, $id) > 0 });
	};
	my $log = sub { "$PostgreSQL::Test::Utils::log_path/$args{name}_$_[0].log" };
	my $start = sub {
		my ($name, @more) = @_;
		my $pid = fork() // die "could not fork: $!";
		if ($pid == 0)
		{
			open(STDOUT, '>>', $log->($name)) or die "could not open log: $!";
			open(STDERR, '>&', \*STDOUT) or die "could not redirect stderr: $!";
			@ENV{ keys %env } = values %env;
			# not the source tree, where job_queue.so would pass for a Python module
			chdir($dir) or die "could not chdir: $!";
			exec(@{ $args{worker} }, '--dsn', $dsn, '--name', $name, '--lease', '2',
				'--heartbeat', '0.3', '--grace', '20', '--poll-interval', '600',
				'--concurrency', '4', '--log-level', 'info', @more)
			  or die "could not start the worker: $!";
		}
		$workers{$name} = $pid;
		# ready once it listens
		wait_until(sub { -e $log->($name) && slurp_file($log->($name)) =~ /tasks add/ })
		  or die "worker $name did not start";
		return $pid;
	};
	# exit code of worker $name, "signal N", or undef if it runs on after $seconds
	my $wait_exit = sub { return wait_named_child(\%workers, @_) };
	my $enqueue = sub {
		my ($task, %opt) = @_;
		my $options = join '', map { ", $_ => $opt{$_}" } sort keys %opt;
		return $query->("SELECT jq_enqueue('$task', kind => 'task'$options)");
	};

	# 1. the enqueue helpers
	{
		local @ENV{ keys %env } = values %env;
		my ($out, $err) = run_command([ @{ $args{enqueue} }, $dsn ]);
		is($err, '', 'enqueue helpers: no error');
	}
	is( $query->(
			q{SELECT string_agg(format('%s %s %s', queue, payload, priority), ', ' ORDER BY id)
			  FROM jq_jobs WHERE kind = 'task'}),
		'helpers {"a": 1, "b": 1} 3, bulk {"a": 1, "b": 2} 0, bulk {"a": 2, "b": 2} 0',
		'enqueue helpers: the committed jobs, with their options; none of the rolled-back one');

	# 2. success, woken by NOTIFY
	$start->('w1');
	$wait_query->(q{SELECT count(*) = 3 FROM jq_jobs WHERE kind = 'task' AND state = 'succeeded'})
	  or die 'helpers jobs not run';
	is( $query->(q{SELECT string_agg(result::text, ' ' ORDER BY id) FROM jq_jobs WHERE kind = 'task'}),
		'2 3 4', 'the handlers\' return values are the results');
	my $unknown = $enqueue->('no_such_handler');
	my $add = $enqueue->('add', payload => q{'{"a": 20, "b": 22}'});
	ok($wait_query->("SELECT state = 'succeeded' AND result = '42' FROM jq_jobs WHERE id = $add"),
		'an idle worker is woken by NOTIFY and runs the job');

	# 3. exception -> retried -> failed with the stack
	my $boom = $enqueue->('boom', payload => q{'7'}, max_attempts => 3);
	ok($wait_query->("SELECT state = 'failed' FROM jq_jobs WHERE id = $boom"), 'boom: failed');
	is($query->("SELECT attempts || ' ' || jsonb_array_length(errors) FROM jq_jobs WHERE id = $boom"),
		'3 3', 'boom: three attempts, three errors');
	is($count_events->('run', $boom), 3, 'boom: the handler ran once per attempt');
	my $error = $query->("SELECT last_error FROM jq_jobs WHERE id = $boom");
	like($error, qr/^\w*Error: boom 7/, 'boom: the error names the exception and its message');
	like($error, $args{stack}, 'boom: the error has the stack');
	like($query->("SELECT result ->> 'traceback' FROM jq_jobs WHERE id = $boom"),
		$args{stack}, 'boom: the stack is in the result too');

	my $fatal = $enqueue->('fatal', max_attempts => 3);
	ok($wait_query->("SELECT state = 'failed' FROM jq_jobs WHERE id = $fatal"), 'fatal: failed');
	like($query->("SELECT attempts || ' ' || last_error FROM jq_jobs WHERE id = $fatal"),
		qr/^1 Fatal: no retry/, 'fatal: at once, without retries');

	# 4. timeout
	my $slow = $enqueue->('sleep', payload => q{'{"seconds": 30}'}, timeout => q{'1 second'},
		max_attempts => 1);
	ok($wait_query->("SELECT state = 'failed' FROM jq_jobs WHERE id = $slow"), 'timeout: failed');
	like($query->("SELECT last_error FROM jq_jobs WHERE id = $slow"),
		qr/timeout of 1000 ms/, 'timeout: the error says so');
	ok($wait_event->('cancelled', $slow), 'timeout: the handler was told to stop');

	# 5. heartbeats keep a job that runs longer than its lease
	my $long = $enqueue->('sleep', payload => q{'{"seconds": 5}'});
	ok($wait_query->("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $long"),
		'long job: succeeded');
	is($query->("SELECT attempts FROM jq_jobs WHERE id = $long"), '1',
		'long job: one attempt under a 2 s lease');
	is($count_events->('start', $long), 1, 'long job: ran once');

	# 6. cancel of a running job
	my $cancel = $enqueue->('sleep', payload => q{'{"seconds": 60}'});
	$wait_event->('start', $cancel) or die 'cancel job not started';
	is($query->("SELECT jq_cancel($cancel)"), 't', 'cancel: jq_cancel');
	ok($wait_event->('cancelled', $cancel), 'cancel: the handler was told');
	my $after = $enqueue->('add', payload => q{'{"a": 1, "b": 2}'});
	ok($wait_query->("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $after"),
		'cancel: the worker goes on');
	is($query->("SELECT state FROM jq_jobs WHERE id = $cancel"), 'cancelled',
		'cancel: the job stays cancelled');

	# 7. SIGTERM during a job
	my $term = $enqueue->('sleep', payload => q{'{"seconds": 3}'});
	$wait_event->('start', $term) or die 'sigterm job not started';
	kill 'TERM', $workers{w1};
	wait_until(sub { slurp_file($log->('w1')) =~ /stopping/ }) or die 'no stopping';
	my $late = $enqueue->('add', payload => q{'{"a": 0, "b": 0}'});
	is($wait_exit->('w1', 30), 0, 'sigterm: the worker exits 0');
	is($query->("SELECT state || ' ' || attempts FROM jq_jobs WHERE id = $term"), 'succeeded 1',
		'sigterm: the running job finished in the grace period');
	is($count_events->('start', $term) . ' ' . $count_events->('end', $term), '1 1',
		'sigterm: run once');
	is($query->("SELECT state || ' ' || attempts FROM jq_jobs WHERE id = $late"), 'ready 0',
		'sigterm: nothing claimed after it');

	# 8. kill -9 mid-job: run again after the lease
	$start->('w2');
	ok($wait_query->("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $late"),
		'a new worker takes what was left');
	my $killed = $enqueue->('sleep', payload => q{'{"seconds": 2}'}, max_attempts => 3);
	$wait_event->('start', $killed) or die 'kill job not started';
	kill 'KILL', $workers{w2};
	$wait_exit->('w2', 10);
	$start->('w3');
	ok($wait_query->("SELECT state = 'succeeded' FROM jq_jobs WHERE id = $killed"),
		'kill -9: the job succeeded');
	is($query->("SELECT attempts FROM jq_jobs WHERE id = $killed"), '2',
		'kill -9: on its second attempt');
	is(join(' ', map { $_->[3] } grep { $_->[0] eq 'start' && $_->[1] == $killed } $event_list->()),
		'w2 w3', 'kill -9: started by the killed worker, then by the other');

	# 9. two workers, 2,000 jobs, each handled once; one of them without LISTEN
	$start->('w4', '--no-listen', '--poll-interval', '0.2');
	my ($first) = $query->(
		q{SELECT min(i) FROM unnest(jq_enqueue_bulk(array_fill('record'::text, ARRAY[2000]),
													 kind => 'task')) i});
	ok( $wait_query->(
			"SELECT count(*) = 2000 FROM jq_jobs WHERE id >= $first AND state = 'succeeded'"),
		'2,000 jobs: all succeeded');
	my %runs;
	$runs{ $_->[1] }++ for grep { $_->[0] eq 'run' && $_->[1] >= $first } $event_list->();
	is(scalar(keys %runs), 2000, '2,000 jobs: each ran');
	is(scalar(grep { $_ != 1 } values %runs), 0, '2,000 jobs: none ran twice');
	my %by;
	$by{ $_->[3] }++ for grep { $_->[0] eq 'run' && $_->[1] >= $first } $event_list->();
	is(join(' ', sort keys %by), 'w3 w4', '2,000 jobs: both workers took part');
	is($query->("SELECT count(*) FROM jq_jobs WHERE id >= $first AND attempts <> 1"), '0',
		'2,000 jobs: one attempt each');

	# 10. no handler: left ready
	is($query->("SELECT state || ' ' || attempts FROM jq_jobs WHERE id = $unknown"), 'ready 0',
		'a task without a handler stays ready, never attempted');

	kill 'TERM', $workers{$_} for keys %workers;
	is($wait_exit->($_, 30), 0, "$_ stopped") for sort keys %workers;
	$node->stop;
	return;
}

1;
