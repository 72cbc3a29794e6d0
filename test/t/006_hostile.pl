# Hostile roles against job_queue: an unprivileged LOGIN role (mallory) with
# a schema of its own tries to gain rights, read or change other roles'
# jobs and data, or run programs on the server.  Each attack checks that
# its effect is absent (mallory is no superuser, the secret was not copied,
# no code of mallory's ran as another role, alice's jobs are unchanged), not
# only that an error was raised.  Groups:
#
#  1. look-alike operators, functions, aggregates, catalog views and types
#     in a schema put first in the search path (session SET, ALTER ROLE SET,
#     a job's own SET or set_config) against every API function and view,
#     while the executors and the scheduler run mallory's jobs;
#  2. leaky functions in a WHERE clause on every view;
#  3. escapes from SQL jobs run by the in-server executors;
#  4. session state carried from one role's job to the next in one
#     executor transaction;
#  5. every path to enqueue a shell job without the right, and shell jobs
#     of a role that lost the right before they ran;
#  6. other roles' jobs and schedules through every API function.
#
# 007_hostile_workers covers external workers and NOTIFY.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use IPC::Run;
use Time::HiRes qw(sleep);

$PostgreSQL::Test::Utils::timeout_default = 60
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

# one executor that claims big batches and keeps them in one transaction,
# so that jobs of different roles share it (group 4)
my $node = hostile_node('hostile', q{
jq.executors_per_database = 1
jq.batch_size = 1000
jq.batch_time = '60s'
});
my $su = $node->safe_psql('postgres', 'SELECT current_user');
my $dir = PostgreSQL::Test::Utils::tempdir;

sub sq { return $node->safe_psql('postgres', shift); }

# Whether a function or view of the extension exists.
sub has_function
{
	my ($name) = @_;
	return sq("SELECT count(*) FROM pg_proc WHERE proname = '$name'") > 0;
}

sub has_view
{
	my ($name) = @_;
	return sq("SELECT to_regclass('public.$name') IS NOT NULL") eq 't';
}

sub wait_jobs { return hostile_wait_jobs($node, @_); }
sub no_effect { return hostile_no_effect($node, @_); }

# Queues an admin configured: settings on the enqueue path, a limited
# queue, queues for external workers only, and a paused one.
sq(q{
SELECT jq_configure_queue('adminq', default_priority => 5, default_max_attempts => 3,
						  default_timeout => '1 minute', max_ready => 100000);
SELECT jq_configure_queue('limq', concurrency => 1, rate_limit => 1000);
SELECT jq_configure_queue('malext', external_only => true);
SELECT jq_configure_queue('malext2', external_only => true);
SELECT jq_configure_queue('malhold', paused => true);
SELECT jq_configure_queue('aliceext', external_only => true);
SELECT jq_configure_queue('aliceext2', external_only => true);
SELECT jq_configure_queue('aliceready', external_only => true);
SELECT jq_configure_queue('alicehold', paused => true);
});

# ----------------------------------------------------------------------
# alice's jobs, group, schedule and queue, each with a marker to look for
# ----------------------------------------------------------------------
my ($alice_ready, $alice_later, $alice_ok, $alice_err) = split /\|/, sq(q{
SET ROLE alice;
SELECT jq_enqueue('SELECT ''ALICECMD0''', queue => 'aliceready', payload => '{"m": "ALICEPAY0"}'),
	   jq_enqueue('SELECT ''ALICECMD1''', queue => 'alicehold', payload => '{"m": "ALICEPAY1"}',
				  unique_key => 'ALICEKEY1', run_at => now() + interval '1 day'),
	   jq_enqueue('SELECT ''ALICERES2'' AS r', payload => '{"m": "ALICEPAY2"}'),
	   jq_enqueue($$DO 'BEGIN RAISE EXCEPTION ''ALICEERR3''; END'$$, max_attempts => 1);
});
sq(q{
SET ROLE alice;
SELECT jq_enqueue('SELECT 1', queue => 'aliceext') FROM generate_series(1, 3);
SELECT jq_enqueue('SELECT 1', queue => 'aliceext2');
SELECT * FROM jq_enqueue_group('[{"name": "ALICEMEMBER", "command": "SELECT ''ALICEGCMD''"}]',
							   name => 'ALICEGROUP');
SELECT jq_schedule('ALICESCHED', '@yearly', 'SELECT ''ALICESCHEDCMD''', queue => 'alicehold');
});
my ($alice_held, $alice_held_attempt) = split /\|/,
  sq(q{SET ROLE alice; SELECT id, attempt FROM jq_dequeue('aliceext', 1, worker => 'alice-w')});
my ($alice_failed, $alice_failed_attempt) = split /\|/,
  sq(q{SET ROLE alice; SELECT id, attempt FROM jq_dequeue('aliceext2', 1)});
sq(qq{SET ROLE alice; SELECT jq_fail($alice_failed, 'ALICEFAIL', retry => false,
										attempt => $alice_failed_attempt)});
wait_jobs("$alice_ok, $alice_err");
is(sq("SELECT state FROM jq_jobs WHERE id = $alice_held"), 'running', 'setup: alice holds a job');

# ======================================================================
# 1. look-alikes first in the search path, against every API function
# ======================================================================

# Targets of mallory's own for one round of calls: held jobs, a failed
# one, jobs that wait.  Returns name => value.
sub mallory_targets
{
	my ($round) = @_;
	my %t;
	my $out = sq(qq{
SET ROLE mallory;
SELECT 'wait1=' || jq_enqueue('SELECT 1', queue => 'malhold');
SELECT 'wait2=' || jq_enqueue('SELECT 1', queue => 'malhold');
SELECT jq_enqueue('SELECT 1', queue => 'malext') FROM generate_series(1, 6);
SELECT jq_enqueue('SELECT 1', queue => 'malext2');
SELECT 'held' || row_number() OVER () || '=' || id || ',' || attempt
FROM jq_dequeue('malext', 4, worker => 'mal-$round');
SELECT 'failed=' || id || ',' || attempt FROM jq_dequeue('malext2', 1);
});
	for my $line (split /\n/, $out)
	{
		$t{$1} = $2 if $line =~ /^(\w+)=(.*)$/;
	}
	my ($fid, $fatt) = split /,/, $t{failed};
	sq("SET ROLE mallory; SELECT jq_fail($fid, 'x', retry => false, attempt => $fatt)");
	$t{failed} = $fid;
	return %t;
}

# The API calls of a round: [name, SQL]; $round makes names unique.
sub api_calls
{
	my ($round, %t) = @_;
	my ($h1, $a1) = split /,/, $t{held1};
	my ($h2, $a2) = split /,/, $t{held2};
	my ($h3, $a3) = split /,/, $t{held3};
	my ($h4, $a4) = split /,/, $t{held4};
	my @calls = (
		[ 'jq_enqueue', q{SELECT jq_enqueue('SELECT 1')} ],
		[ 'jq_enqueue to a queue with settings', q{SELECT jq_enqueue('SELECT 1', queue => 'adminq')} ],
		[ 'jq_enqueue with every argument, limited queue',
		  q{SELECT jq_enqueue('SELECT 1', queue => 'limq', priority => 1, run_at => pg_catalog.now(),
							  max_attempts => 2, timeout => '1 minute', payload => '{"k": [1]}')} ],
		[ 'jq_enqueue with unique_key, twice',
		  qq{SELECT jq_enqueue('SELECT 1', queue => 'adminq', unique_key => 'mal-$round'),
					jq_enqueue('SELECT 1', queue => 'adminq', unique_key => 'mal-$round')} ],
		[ 'jq_enqueue with depends_on', qq{SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[$t{wait1}])} ],
		[ 'jq_enqueue_bulk', q{SELECT jq_enqueue_bulk(ARRAY['SELECT 1', 'SELECT 2'], queue => 'adminq')} ],
		[ 'jq_enqueue_bulk with payloads',
		  q{SELECT jq_enqueue_bulk(ARRAY['SELECT 1'], queue => 'limq',
								   payloads => '{"{\\"a\\": 1}"}')} ],
		[ 'jq_enqueue_shell (refused)', q{SELECT jq_enqueue_shell('true')} ],
		[ 'jq_enqueue kind shell (refused)', q{SELECT jq_enqueue('true', kind => 'shell')} ],
		[ 'jq_enqueue_group',
		  qq{SELECT * FROM jq_enqueue_group('[{"name": "a", "command": "SELECT 1"},
			 {"name": "b", "command": "SELECT 2", "depends_on": ["a", $t{wait1}], "queue": "adminq",
			  "payload": {"x": 1}}]', name => 'malgroup-$round')} ],
		[ 'jq_dequeue', q{SELECT * FROM jq_dequeue('malext', 1)} ],
		[ 'jq_dequeue of several queues and kinds',
		  q{SELECT * FROM jq_dequeue(NULL, 2, queues => ARRAY['malext', 'limq'], kinds => ARRAY['sql'])} ],
		[ 'jq_complete', qq{SELECT jq_complete($h1, '{"r": 1}', $a1)} ],
		[ 'jq_fail', qq{SELECT jq_fail($h2, 'boom', true, $a2)} ],
		[ 'jq_heartbeat', qq{SELECT jq_heartbeat($h3, '10 minutes', $a3)} ],
		[ 'jq_cancel', qq{SELECT jq_cancel($t{wait2})} ],
		[ 'jq_retry', qq{SELECT jq_retry($t{failed})} ],
		[ 'jq_schedule',
		  qq{SELECT jq_schedule('mal-$round', 'every 1 hour', 'SELECT 1', queue => 'adminq',
								payload => '{"s": 1}')} ],
		[ 'jq_schedule of a group',
		  qq{SELECT jq_schedule('malg-$round', '\@daily',
								jobs => '[{"name": "x", "command": "SELECT 1"}]')} ],
		[ 'jq_unschedule', qq{SELECT jq_unschedule('mal-$round')} ],
		[ 'jq_configure_queue (refused)', q{SELECT jq_configure_queue('adminq', paused => true)} ],
		[ 'jq_pause (refused)', q{SELECT jq_pause('adminq')} ],
		[ 'jq_resume (refused)', q{SELECT jq_resume('malhold')} ],
		[ 'jq_listen', q{SELECT jq_listen()} ],
		[ 'jq_jobs',
		  q{SELECT count(*) FROM jq_jobs WHERE state = 'ready' AND payload @> '{}' AND id > 0
			AND created_at <= now() AND queue || '' = queue AND owner = 'mallory'::regrole} ],
		[ 'jq_queues', q{SELECT * FROM jq_queues WHERE queue = 'adminq' AND ready >= 0} ],
		[ 'jq_groups', q{SELECT * FROM jq_groups WHERE name LIKE 'mal%' AND total > 0} ],
		[ 'jq_schedules', q{SELECT * FROM jq_schedules WHERE name = 'x' OR next_run > now()} ],
	);
	for my $v (qw(jq_stats jq_running jq_executors))
	{
		push @calls, [ $v, "SELECT * FROM $v" ] if has_view($v);
	}
	push @calls, [ 'jq_run_sql', qq{SELECT jq_run_sql($h4, $a4)} ] if has_function('jq_run_sql');
	return @calls;
}

# a schedule of mallory's keeps firing, with her look-alikes in its path,
# while the attacks run
psql_as($node, 'mallory', q{SELECT jq_schedule('mal-tick', 'every 1 second',
	'SET search_path = mal, pg_catalog, public; SELECT now() = now(), count(*) FROM jq_jobs')});

# session SET, session SET with look-alike types, ALTER ROLE ... SET, and
# temporary relations named like the extension's tables (pg_temp is in the
# pinned search_path, after pg_catalog)
my $temp_lookalikes = join('', map {
	"CREATE TEMP VIEW $_ AS SELECT * FROM (VALUES (1)) v(x) WHERE mal.trojan('temporary view $_');\n"
} qw(job job_history queue schedule dependency job_group claimed ready due held jq_jobs jq_queues));
my %paths = (
	'session SET' => "SET search_path = mal, pg_catalog, public;\n",
	'session SET with look-alike types' => "SET search_path = maltype, mal, pg_catalog, public;\n",
	'temporary look-alike relations' => $temp_lookalikes);
for my $mode ('session SET', 'session SET with look-alike types', 'ALTER ROLE SET',
	'temporary look-alike relations')
{
	(my $round = $mode) =~ s/\W+/_/g;
	my %t = mallory_targets($round);
	my $set = '';
	if ($mode eq 'ALTER ROLE SET')
	{
		psql_as($node, 'mallory',
			'ALTER ROLE mallory SET search_path = mal, pg_catalog, public');
	}
	else
	{
		$set = $paths{$mode};
	}
	log_since($node);
	# each call in a session of its own, so that no cache of an earlier
	# call hides what the call itself runs; a trojan that runs as another
	# role in mallory's session tells her (WARNING), and is undone at once
	for my $call (api_calls($round, %t))
	{
		my ($name, $sql) = @$call;
		my ($out, $err) = psql_as($node, 'mallory', "SET mal.tag = '$round/$name';\n$set$sql;\n");
		my @hits = $err =~ /(PWNED\[[^\n]*)/g;
		is(join('; ', @hits), '', "look-alikes by $mode: $name");
		hostile_reset($node) if @hits;
	}
	no_effect("look-alikes by $mode: mallory's rights after the calls");
	sq('ALTER ROLE mallory RESET search_path') if $mode eq 'ALTER ROLE SET';
}

# the same calls from inside mallory's jobs, run by the executor, after the
# job's own SET or set_config
for my $mode ('job SET', 'job set_config with look-alike types')
{
	(my $round = $mode) =~ s/\W+/_/g;
	my %t = mallory_targets($round);
	my $set = $mode eq 'job SET' ? 'SET search_path = mal, pg_catalog, public'
	  : q{SELECT pg_catalog.set_config('search_path', 'maltype, mal, pg_catalog, public', false)};
	my @calls = api_calls($round, %t);
	my @ids;
	for my $call (@calls)
	{
		my ($name, $sql) = @$call;
		my $cmd = "SET mal.tag = '$round/$name'; $set; $sql";
		$cmd =~ s/'/''/g;
		push @ids, sq("SET ROLE mallory; SELECT jq_enqueue('$cmd', max_attempts => 1)");
	}
	ok(wait_jobs(join(',', @ids)), "$mode: every job ended");
	my $log = log_since($node);
	for my $call (@calls)
	{
		my ($name) = @$call;
		my $tag = "$round/$name";
		my @hits = $log =~ /(PWNED\[\Q$tag\E:[^\n]*)/g;
		is(join('; ', @hits), '', "look-alikes by $mode: $name");
	}
	no_effect("look-alikes by $mode: mallory's rights after the jobs", $log);
}

# ----------------------------------------------------------------------
# casts between built-in types cannot be made by mallory
# ----------------------------------------------------------------------
{
	my ($out, $err) = psql_as($node, 'mallory', q{
CREATE FUNCTION mal.text_to_jsonb(text) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT CASE WHEN mal.trojan('cast text to jsonb') THEN to_jsonb($1) END $$;
CREATE CAST (text AS jsonb) WITH FUNCTION mal.text_to_jsonb(text) AS IMPLICIT;
});
	is(sq(q{SELECT count(*) FROM pg_cast WHERE castsource = 'text'::regtype
			AND casttarget = 'jsonb'::regtype}), '0', 'CREATE CAST (text AS jsonb) by mallory: no cast');
}

# ======================================================================
# 2. leaky functions against every view
# ======================================================================
# nothing of mallory's changes while the views are read twice
psql_as($node, 'mallory', q{SELECT jq_unschedule('mal-tick')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM jq_jobs WHERE owner = 'mallory'::regrole AND state = 'running'
	  AND queue NOT LIKE 'malext%'}), "mallory's schedule stopped");
my @alice_markers = qw(ALICECMD ALICEPAY ALICERES ALICEERR ALICEKEY ALICEGROUP ALICEMEMBER
  ALICESCHED ALICEFAIL alice);
sq('ANALYZE jq.job, jq.job_history, jq.schedule, jq.job_group');

# The values mallory sees in a view with a plain SELECT.
sub visible_values
{
	my ($role, $view) = @_;
	# leaving out what changes between two reads whoever runs the jobs: ages,
	# latencies and the database's executor counts
	my $cols = sq(qq{SELECT string_agg(quote_ident(attname), ',') FROM pg_attribute
					 WHERE attrelid = 'public.$view'::regclass AND attnum > 0
					   AND atttypid <> 'interval'::regtype
					   AND NOT ('$view' = 'jq_executors' AND atttypid IN ('int4'::regtype, 'int8'::regtype))});
	my ($out) = psql_as($node, $role,
		join('', map { "SELECT $_\::text FROM $view;\n" } split /,/, $cols));
	my %seen = map { $_ => 1 } split /\n/, $out;
	return ($cols, \%seen);
}

# mallory, and a member of jq_worker, which takes every role's jobs but
# sees only its own in the views
my $has_worker_role = sq(q{SELECT count(*) FROM pg_roles WHERE rolname = 'jq_worker'}) eq '1';
sq('CREATE ROLE wk LOGIN IN ROLE jq_worker') if $has_worker_role;
for my $role ('mallory', $has_worker_role ? ('wk') : ())
{
	for my $view (qw(jq_jobs jq_groups jq_schedules jq_queues jq_stats jq_running jq_executors))
	{
		next unless has_view($view);
		my ($cols, $seen) = visible_values($role, $view);
		my @cols = split /,/, $cols;
		my $sql = join('', map { "SELECT count(*) FROM $view WHERE mal.leak($_);\n" } @cols);
		my ($out, $err) = psql_as($node, $role, $sql);
		my @leaked = grep { $_ ne '<NULL>' && !$seen->{$_} } ($err =~ /NOTICE:  LEAK:([^\n]*)/g);
		is(join(' | ', @leaked), '', "leaky function by $role on every column of $view: nothing it cannot SELECT");
		if ($view ne 'jq_queues')
		{
			my @alice = grep { my $v = $_; grep { index($v, $_) >= 0 } @alice_markers } ($err =~ /LEAK:([^\n]*)/g);
			is(join(' | ', @alice), '', "leaky function by $role on $view: none of alice's values");
		}
	}
}

# the columns of jq_jobs one at a time, as the issue names them, and other
# query shapes a planner might push below the view's filter
for my $shape (
	[ 'command', 'SELECT 1 FROM jq_jobs WHERE mal.leak(command)' ],
	[ 'payload', 'SELECT 1 FROM jq_jobs WHERE mal.leak(payload)' ],
	[ 'result', 'SELECT 1 FROM jq_jobs WHERE mal.leak(result)' ],
	[ 'errors', 'SELECT 1 FROM jq_jobs WHERE mal.leak(errors)' ],
	[ 'owner', 'SELECT 1 FROM jq_jobs WHERE mal.leak(owner)' ],
	[ 'a join qual', 'SELECT 1 FROM jq_jobs j JOIN (VALUES (1)) v(x) ON mal.leak(j.command)' ],
	[ 'a lateral subquery', 'SELECT 1 FROM jq_jobs j, LATERAL (SELECT mal.leak(j.payload) AS l OFFSET 0) s WHERE s.l' ],
	[ 'an error message of a cast', 'SELECT 1 FROM jq_jobs WHERE command::int = 1' ],
	[ 'an error message of a jsonb cast', q{SELECT 1 FROM jq_jobs WHERE (payload ->> 'm')::int = 1} ],
	[ 'jq_groups name', 'SELECT 1 FROM jq_groups WHERE mal.leak(name) AND mal.leak(owner)' ],
	[ 'jq_schedules command', 'SELECT 1 FROM jq_schedules WHERE mal.leak(command) AND mal.leak(name)' ],
	[ 'planner statistics of jq.job (pg_stats)',
	  q{SELECT most_common_vals, histogram_bounds FROM pg_stats WHERE schemaname = 'jq'} ])
{
	my ($name, $sql) = @$shape;
	my ($out, $err) = psql_as($node, 'mallory', "$sql;");
	my @alice = grep { index("$out\n$err", $_) >= 0 } grep { $_ ne 'alice' } @alice_markers;
	push @alice, 'owner alice' if $err =~ /LEAK:alice\b/;
	is(join(' ', @alice), '', "leak through $name: none of alice's values");
}

# ======================================================================
# 3. escapes from SQL jobs run by the in-server executors
# ======================================================================
my $scheduler_pid = worker_pid($node, 'scheduler');
# alice's session, for pg_terminate_backend
my ($alice_stdin, $alice_stdout, $alice_stderr) = ('', '', '');
my $alice_h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres') . ' user=alice', '-c',
	  'SELECT pg_sleep(120)' ],
	'<', \$alice_stdin, '>', \$alice_stdout, '2>', \$alice_stderr);
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'alice' AND query LIKE '%pg_sleep%'});
my $alice_pid = sq(q{SELECT pid FROM pg_stat_activity WHERE usename = 'alice' AND query LIKE '%pg_sleep%'});
my $mal_lo = sq(q{SET ROLE mallory; SELECT lo_from_bytea(0, 'mallory')});
sq("CREATE TABLE public.lo_count AS SELECT count(*) AS n FROM pg_largeobject_metadata");
my $datadir = $node->data_dir;

my @escapes = (
	[ 'RESET ROLE', 'RESET ROLE; ALTER ROLE mallory SUPERUSER' ],
	[ 'SET ROLE to the superuser', "SET ROLE $su; ALTER ROLE mallory SUPERUSER" ],
	[ 'SET SESSION AUTHORIZATION', "SET SESSION AUTHORIZATION $su; ALTER ROLE mallory SUPERUSER" ],
	[ 'SET SESSION AUTHORIZATION DEFAULT', 'SET SESSION AUTHORIZATION DEFAULT; ALTER ROLE mallory SUPERUSER' ],
	[ "set_config('role')", "SELECT set_config('role', '$su', false); ALTER ROLE mallory SUPERUSER" ],
	[ "set_config('session_authorization')",
	  "SELECT set_config('session_authorization', '$su', false); ALTER ROLE mallory SUPERUSER" ],
	[ 'SET LOCAL ROLE in a DO block',
	  "DO \$\$BEGIN SET LOCAL ROLE $su; EXECUTE 'ALTER ROLE mallory SUPERUSER'; END\$\$" ],
	[ 'ALTER ROLE SUPERUSER', 'ALTER ROLE mallory SUPERUSER' ],
	[ 'GRANT jq_admin', 'GRANT jq_admin TO mallory' ],
	[ 'GRANT pg_execute_server_program', 'GRANT pg_execute_server_program TO mallory' ],
	[ 'CREATE ROLE SUPERUSER', 'CREATE ROLE mal_evil SUPERUSER LOGIN' ],
	[ 'SET log_statement', q{SET log_statement = 'all'; SELECT current_setting('log_statement') AS v} ],
	[ 'SET session_preload_libraries',
	  q{SET session_preload_libraries = 'auto_explain'; SELECT current_setting('session_preload_libraries') AS v} ],
	[ 'ALTER SYSTEM', q{ALTER SYSTEM SET work_mem = '77MB'} ],
	[ 'COPY TO PROGRAM', "COPY (SELECT 1) TO PROGRAM 'touch $dir/copy_to'" ],
	[ 'COPY FROM PROGRAM',
	  "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'touch $dir/copy_from; echo x'" ],
	[ 'COPY TO a server file', "COPY (SELECT v FROM public.secret) TO '$dir/copy_file'" ],
	[ 'pg_read_file', q{SELECT pg_read_file('postgresql.conf') AS v} ],
	[ 'pg_ls_dir', q{SELECT string_agg(f, ',') AS v FROM pg_ls_dir('.') f} ],
	[ 'lo_import of a server file', "SELECT lo_import('$datadir/postgresql.conf') AS v" ],
	[ 'lo_export to a server file', "SELECT lo_export($mal_lo, '$dir/lo_export') AS v" ],
	[ 'LOAD of a library', q{LOAD 'auto_explain'} ],
	[ 'CREATE EXTENSION dblink', 'CREATE EXTENSION dblink SCHEMA mal' ],
	[ 'CREATE EXTENSION adminpack', 'CREATE EXTENSION adminpack' ],
	[ 'CREATE EXTENSION file_fdw', 'CREATE EXTENSION file_fdw SCHEMA mal' ],
	[ 'C function', q{CREATE FUNCTION mal.sys(text) RETURNS int LANGUAGE c AS 'libc.so.6', 'system'} ],
	[ 'CREATE EVENT TRIGGER',
	  q{CREATE FUNCTION mal.evt() RETURNS event_trigger LANGUAGE plpgsql AS
		'BEGIN PERFORM mal.trojan(''event trigger''); END';
		CREATE EVENT TRIGGER mal_evt ON ddl_command_start EXECUTE FUNCTION mal.evt()} ],
	[ "pg_terminate_backend of alice's session", "SELECT pg_terminate_backend($alice_pid)" ],
	[ 'pg_terminate_backend of the scheduler', "SELECT pg_terminate_backend($scheduler_pid)" ],
	[ 'reading the secret table', q{SELECT v FROM public.secret} ],
	[ "reading alice's table", q{SELECT v FROM alice.private} ],
	[ 'reading jq.job', q{SELECT command FROM jq.job} ],
	[ 'writing jq.job', "UPDATE jq.job SET owner = 10, command = 'ALTER ROLE mallory SUPERUSER'" ],
	[ 'inserting into jq.job',
	  q{INSERT INTO jq.job (queue, command, priority, run_at, max_attempts, owner)
		VALUES ('default', 'ALTER ROLE mallory SUPERUSER', 0, now(), 1, 10)} ],
	[ 'deleting jq.job_history', 'DELETE FROM jq.job_history' ],
	[ 'internal jq._jq_cancel as admin',
	  "SELECT jq._jq_cancel('alice'::regrole, true, $alice_later)" ],
	[ 'internal jq._finish', "SELECT jq._finish(ARRAY[$alice_held]::bigint[], ARRAY['succeeded'], NULL, NULL, NULL, NULL, NULL, NULL)" ],
	[ 'transaction control', 'COMMIT; ALTER ROLE mallory SUPERUSER' ],
	[ 'search_path left for the executor', 'SET search_path = mal, pg_catalog, public' ],
	[ 'set_config(search_path) left for the executor',
	  q{SELECT set_config('search_path', 'maltype, mal, pg_catalog, public', false)} ],
	[ 'WITH HOLD cursor left for the commit',
	  q{DECLARE mal_cur CURSOR WITH HOLD FOR SELECT mal.trojan('holdable cursor')} ],
	[ 'deferred trigger left for the commit',
	  q{CREATE TABLE mal.deferred (x int);
		CREATE FUNCTION mal.deferred_trojan() RETURNS trigger LANGUAGE plpgsql AS
		'BEGIN PERFORM mal.trojan(''deferred trigger''); RETURN NULL; END';
		CREATE CONSTRAINT TRIGGER mal_deferred AFTER INSERT ON mal.deferred
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mal.deferred_trojan();
		INSERT INTO mal.deferred VALUES (1)} ],
	[ 'pg_terminate_backend of its own executor', 'SELECT pg_terminate_backend(pg_backend_pid())' ],
	[ 'jq_run_sql nested in a job',
	  q{SELECT jq_enqueue('SELECT jq_listen()', queue => 'malnest');
		SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('malnest', 1) d} ],
	[ 'SECURITY DEFINER function of mallory',
	  q{CREATE FUNCTION mal.def() RETURNS void LANGUAGE sql SECURITY DEFINER AS 'ALTER ROLE mallory SUPERUSER';
		SELECT mal.def()} ],
);
my @esc_ids;
for my $e (@escapes)
{
	my ($name, $cmd) = @$e;
	$cmd = "SET mal.tag = 'escape/$name'; $cmd";
	$cmd =~ s/'/''/g;
	push @esc_ids, sq("SET ROLE mallory; SELECT jq_enqueue('$cmd', max_attempts => 1)");
}
ok(wait_jobs(join(',', @esc_ids)), 'escapes: every job ended');
my $esc_log = log_since($node);
my %esc_result;
for my $i (0 .. $#escapes)
{
	$esc_result{ $escapes[$i][0] } = sq("SELECT coalesce(result::text, '') FROM jq_jobs WHERE id = $esc_ids[$i]");
}

# what each escape would have left, besides the common effects
my %escape_check = (
	'GRANT jq_admin' => sub { sq(q{SELECT pg_has_role('mallory', 'jq_admin', 'MEMBER')}) eq 'f' },
	'GRANT pg_execute_server_program' =>
	  sub { sq(q{SELECT pg_has_role('mallory', 'pg_execute_server_program', 'MEMBER')}) eq 'f' },
	'CREATE ROLE SUPERUSER' => sub { sq(q{SELECT count(*) FROM pg_roles WHERE rolname = 'mal_evil'}) eq '0' },
	'SET log_statement' => sub { $esc_result{'SET log_statement'} !~ /all/ },
	'SET session_preload_libraries' => sub { $esc_result{'SET session_preload_libraries'} !~ /auto_explain/ },
	'ALTER SYSTEM' => sub { slurp_file("$datadir/postgresql.auto.conf") !~ /77MB/ },
	'COPY TO PROGRAM' => sub { !-e "$dir/copy_to" },
	'COPY FROM PROGRAM' => sub { !-e "$dir/copy_from" },
	'COPY TO a server file' => sub { !-e "$dir/copy_file" },
	'pg_read_file' => sub { $esc_result{pg_read_file} !~ /shared_preload_libraries/ },
	'pg_ls_dir' => sub { $esc_result{pg_ls_dir} !~ /postgresql\.conf/ },
	'lo_import of a server file' =>
	  sub { sq('SELECT count(*) FROM pg_largeobject_metadata') eq sq('SELECT n FROM public.lo_count') },
	'lo_export to a server file' => sub { !-e "$dir/lo_export" },
	'LOAD of a library' => sub {
		my $id = sq(q{SET ROLE mallory; SELECT jq_enqueue($$SELECT current_setting('auto_explain.log_min_duration', true) AS v$$)});
		wait_jobs($id);
		sq("SELECT coalesce(result::text, '') FROM jq_jobs WHERE id = $id") !~ /-1/;
	},
	'CREATE EXTENSION dblink' => sub { sq(q{SELECT count(*) FROM pg_extension WHERE extname = 'dblink'}) eq '0' },
	'CREATE EXTENSION adminpack' => sub { sq(q{SELECT count(*) FROM pg_extension WHERE extname = 'adminpack'}) eq '0' },
	'CREATE EXTENSION file_fdw' => sub { sq(q{SELECT count(*) FROM pg_extension WHERE extname = 'file_fdw'}) eq '0' },
	'C function' => sub { sq(q{SELECT count(*) FROM pg_proc WHERE proname = 'sys'}) eq '0' },
	'CREATE EVENT TRIGGER' => sub { sq(q{SELECT count(*) FROM pg_event_trigger WHERE evtname = 'mal_evt'}) eq '0' },
	"pg_terminate_backend of alice's session" =>
	  sub { sq("SELECT count(*) FROM pg_stat_activity WHERE pid = $alice_pid") eq '1' },
	'pg_terminate_backend of the scheduler' =>
	  sub { $scheduler_pid eq '' || sq("SELECT count(*) FROM pg_stat_activity WHERE pid = $scheduler_pid") eq '1' },
	'reading the secret table' => sub { $esc_result{'reading the secret table'} !~ /TOPSECRET/ },
	"reading alice's table" => sub { $esc_result{"reading alice's table"} !~ /ALICE-PRIVATE/ },
	'reading jq.job' => sub { $esc_result{'reading jq.job'} !~ /ALICECMD/ },
	'writing jq.job' => sub { sq(q{SELECT count(*) FROM jq.job WHERE owner = 10 OR command LIKE 'ALTER ROLE%'}) eq '0' },
	'inserting into jq.job' => sub { sq(q{SELECT count(*) FROM jq.job WHERE command LIKE 'ALTER ROLE%'}) eq '0' },
	'deleting jq.job_history' => sub { sq("SELECT count(*) FROM jq.job_history WHERE id = $alice_ok") eq '1' },
	'internal jq._jq_cancel as admin' => sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_later") eq 'scheduled' },
	'internal jq._finish' => sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_held") eq 'running' },
	'pg_terminate_backend of its own executor' => sub { $esc_log !~ /terminating background worker "job_queue/ },
	'jq_run_sql nested in a job' => sub { $esc_log !~ /terminated by signal|PANIC|TRAP/ },
);
for my $e (@escapes)
{
	my ($name) = @$e;
	my $check = $escape_check{$name};
	my $ok = $check ? $check->() : 1;
	my $tag = "escape/$name:";
	my $effects = hostile_effects($node, join("\n", grep { /\Q$tag\E/ } split /\n/, $esc_log));
	$effects .= 'its own effect is there' unless $ok;
	is($effects, '', "escape from a job: $name");
	hostile_reset($node) if $effects ne '';
}
$alice_h->kill_kill;

no_effect("mallory's schedule and jobs with look-alikes in their path, run all along",
	$esc_log . log_since($node));

# ======================================================================
# 4. state carried from one job to the next in one executor transaction
# ======================================================================
my $alice_lo = sq(q{SET ROLE alice; SELECT lo_from_bytea(0, 'ALICE-LO-SECRET')});
sq(q{
SET ROLE alice;
CREATE TABLE alice.inbox (v text);
CREATE SEQUENCE alice.seq START 424242;
CREATE TABLE alice.uniq (x int UNIQUE DEFERRABLE INITIALLY IMMEDIATE);
SET ROLE mallory;
CREATE SEQUENCE mal.seq START 666000;
});
my $seeded = sq('SELECT setseed(0.42); SELECT random()');
$seeded = (split /\n/, $seeded)[-1];

# [name, [owner, command] of each job in order, check on the results by name]
my @carry = (
	[ 'large object descriptor read',
	  [ alice => "SELECT lo_open($alice_lo, 393216) AS fd" ],
	  [ mallory => q{SELECT convert_from(loread(0, 100), 'UTF8') AS v} ],
	  sub { $_[1] !~ /ALICE-LO-SECRET/ } ],
	[ 'large object descriptor written',
	  [ alice => "SELECT lo_open($alice_lo, 393216) AS fd" ],
	  [ mallory => q{SELECT lo_lseek(0, 0, 0), lowrite(0, 'MALLORY') AS v} ],
	  sub { sq("SELECT convert_from(lo_get($alice_lo), 'UTF8')") eq 'ALICE-LO-SECRET' } ],
	[ 'random seed',
	  [ mallory => 'SELECT setseed(0.42)' ],
	  [ alice => 'SELECT random() AS r' ],
	  sub { $_[1] !~ /\Q$seeded\E/ } ],
	[ 'temporary table shadowing a table',
	  [ mallory => 'CREATE TEMP TABLE inbox (v text); GRANT ALL ON inbox TO PUBLIC' ],
	  [ alice => q{INSERT INTO inbox VALUES ('ALICE-INBOX')} ],
	  [ mallory => 'SELECT string_agg(v, \',\') AS v FROM pg_temp.inbox' ],
	  sub { $_[2] !~ /ALICE-INBOX/ && sq(q{SELECT count(*) FROM alice.inbox WHERE v = 'ALICE-INBOX'}) eq '1' } ],
	[ 'temporary table names',
	  [ alice => q{CREATE TEMP TABLE alice_tmp_secret AS SELECT 1 AS x} ],
	  [ mallory => q{SELECT string_agg(relname, ',') AS v FROM pg_class WHERE relpersistence = 't'} ],
	  sub { $_[1] !~ /alice_tmp_secret/ } ],
	[ 'prepared statement',
	  [ alice => q{PREPARE alice_stmt AS SELECT v FROM alice.private} ],
	  [ mallory => q{SELECT string_agg(statement, ';') AS v FROM pg_prepared_statements} ],
	  [ mallory => 'EXECUTE alice_stmt' ],
	  sub { "$_[1]$_[2]" !~ /alice\.private|ALICE-PRIVATE/ } ],
	[ 'WITH HOLD cursor',
	  [ alice => q{DECLARE alice_cur CURSOR WITH HOLD FOR SELECT v FROM alice.private} ],
	  [ mallory => 'FETCH ALL FROM alice_cur' ],
	  [ mallory => q{SELECT string_agg(statement, ';') AS v FROM pg_cursors} ],
	  sub { "$_[1]$_[2]" !~ /alice\.private|ALICE-PRIVATE/ } ],
	[ 'advisory locks, session and transaction',
	  [ alice => 'SELECT pg_advisory_lock(4711), pg_advisory_xact_lock(4712)' ],
	  [ mallory => q{SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()} ],
	  [ mallory => 'SELECT pg_advisory_unlock(4711) AS released' ],
	  sub { $_[1] =~ /"n":\s*0/ && $_[2] !~ /true/ } ],
	[ 'lastval of a sequence (alice to mallory)',
	  [ alice => q{SELECT nextval('alice.seq')} ],
	  [ mallory => 'SELECT lastval() AS v' ],
	  sub { $_[1] !~ /424242/ } ],
	[ 'lastval of a sequence (mallory to alice)',
	  [ mallory => q{SELECT nextval('mal.seq')} ],
	  [ alice => 'SELECT lastval() AS v' ],
	  sub { $_[1] !~ /666000/ } ],
	[ 'custom setting',
	  [ alice => q{SELECT set_config('app.secret', 'ALICE-GUC', false)} ],
	  [ mallory => q{SELECT current_setting('app.secret', true) AS v} ],
	  sub { $_[1] !~ /ALICE-GUC/ } ],
	[ 'search_path',
	  [ mallory => 'SET search_path = mal, pg_catalog, public' ],
	  [ alice => q{SELECT current_setting('search_path') AS p, lower('X') AS l, now() = now() AS e} ],
	  sub { $_[1] !~ /mal/ } ],
	[ 'statement_timeout',
	  [ mallory => q{SET statement_timeout = '1ms'} ],
	  [ alice => 'SELECT pg_sleep(0.05), 1 AS done' ],
	  sub { $_[1] =~ /"done"/ } ],
	[ 'default_transaction_read_only',
	  [ mallory => 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY' ],
	  [ alice => q{INSERT INTO alice.inbox VALUES ('after'); SELECT 1 AS done} ],
	  sub { $_[1] =~ /"done"/ } ],
	[ 'SET TRANSACTION READ ONLY',
	  [ mallory => 'SET TRANSACTION READ ONLY' ],
	  [ alice => q{INSERT INTO alice.inbox VALUES ('after'); SELECT 1 AS done} ],
	  sub { $_[1] =~ /"done"/ } ],
	[ 'LISTEN',
	  [ mallory => 'LISTEN mal_channel' ],
	  [ alice => 'SELECT array_agg(c) AS v FROM pg_listening_channels() c' ],
	  sub { $_[1] !~ /mal_channel/ } ],
);
# every job in one transaction, so that one executor claims them together;
# the first and the last job say which transaction ran them
my @order;
my $enqueue = "BEGIN;\nSET ROLE alice; SELECT jq_enqueue('SELECT txid_current() AS t');\n";
for my $c (@carry)
{
	my ($name, @rest) = @$c;
	pop @rest;
	for my $j (@rest)
	{
		my ($owner, $cmd) = @$j;
		(my $q = $cmd) =~ s/'/''/g;
		$enqueue .= "SET ROLE $owner; SELECT jq_enqueue('$q', max_attempts => 1);\n";
		push @order, $name;
	}
}
$enqueue .= "SET ROLE mallory; SELECT jq_enqueue('SELECT txid_current() AS t');\nRESET ROLE;\nCOMMIT;\n";
my @carry_ids = grep { /^\d+$/ } split /\n/, sq($enqueue);
my $first = shift @carry_ids;
my $last = pop @carry_ids;
is(scalar(@carry_ids), scalar(@order), 'state: every job enqueued');
ok(wait_jobs(join(',', $first, @carry_ids, $last)), 'state: every job ended');
is(sq("SELECT count(DISTINCT started_at::date) FROM jq_jobs WHERE id IN (" . join(',', @carry_ids) . ")"),
	'1', 'state: the jobs ran');
my $txids = sq("SELECT count(DISTINCT result -> 0 ->> 't') FROM jq_jobs WHERE id IN ($first, $last)");
is($txids, '1', 'state: one executor transaction ran the jobs of alice and mallory');
my $k = 0;
for my $c (@carry)
{
	my ($name, @rest) = @$c;
	my $check = pop @rest;
	my @results;
	for my $j (@rest)
	{
		my $id = $carry_ids[ $k++ ];
		my $r = sq("SELECT coalesce(result::text, state) FROM jq_jobs WHERE id = $id");
		push @results, $r;
	}
	ok($check->(@results), "state carried between jobs: $name")
	  or diag("results: " . join(' || ', @results));
}
no_effect('state carried between jobs: no trojan ran as alice', log_since($node));
# the control of the SET CONSTRAINTS case: alone, alice's job fails
my $alone = sq(q{SET ROLE alice; SELECT jq_enqueue('INSERT INTO alice.uniq VALUES (1); INSERT INTO alice.uniq VALUES (1); DELETE FROM alice.uniq', max_attempts => 1)});
wait_jobs($alone);
is(sq("SELECT state || ' ' || last_error_code FROM jq_jobs WHERE id = $alone"), 'failed 23505',
	'state: a duplicate in alice.uniq fails a job run alone');
# SET CONSTRAINTS outlives the subtransaction of its job: the executor
# commits after such a job, so alice's next job checks her constraints
my ($sc_m, $sc_a) = grep { /^\d+$/ } split /\n/, sq(q{
BEGIN;
SET ROLE mallory;
SELECT jq_enqueue('SET CONSTRAINTS ALL DEFERRED', max_attempts => 1);
SET ROLE alice;
SELECT jq_enqueue('INSERT INTO alice.uniq VALUES (1); INSERT INTO alice.uniq VALUES (1); DELETE FROM alice.uniq', max_attempts => 1);
RESET ROLE;
COMMIT;
});
wait_jobs("$sc_m, $sc_a");
is(sq("SELECT state || ' ' || last_error_code FROM jq_jobs WHERE id = $sc_a"), 'failed 23505',
	'state carried between jobs: SET CONSTRAINTS');

# mallory finishes her own job while an executor runs it in a batch with
# alice's: alice's job runs once and succeeds, the executor lives on
{
	my ($m, $a) = split /\n/, sq(q{
BEGIN;
SET ROLE mallory;
SELECT jq_enqueue('SELECT pg_sleep(2)', max_attempts => 1);
SET ROLE alice;
SELECT jq_enqueue($$INSERT INTO alice.inbox VALUES ('BATCHMATE')$$, max_attempts => 1);
COMMIT;
});
	wait_for_job_state($node, 'postgres', $m, 'running');
	my ($out, $err) = psql_as($node, 'mallory', qq{
SELECT jq_complete($m, '{"forged": true}', 1);
SELECT jq_fail($m, 'forged', false, 1);
SELECT jq_heartbeat($m, '1 hour', 1);
});
	wait_jobs("$m, $a");
	my $log = log_since($node);
	is(sq(qq{SELECT state || ' ' || (SELECT count(*) FROM alice.inbox WHERE v = 'BATCHMATE')
			 FROM jq_jobs WHERE id = $a}) . ($log =~ /terminated by signal|PANIC/ ? ' crash' : ''),
		'succeeded 1', "mallory finishing her job under an executor: alice's job in the batch ran once");
}

# ======================================================================
# 5. shell jobs without the right to run programs
# ======================================================================
my @shell = (
	[ 'jq_enqueue kind shell', "SELECT jq_enqueue('touch $dir/sh1', kind => 'shell')" ],
	[ 'jq_enqueue_shell command', "SELECT jq_enqueue_shell('touch $dir/sh2')" ],
	[ 'jq_enqueue_shell argv', "SELECT jq_enqueue_shell(argv => ARRAY['/usr/bin/touch', '$dir/sh3'])" ],
	[ 'jq_enqueue_bulk kind shell', "SELECT jq_enqueue_bulk(ARRAY['touch $dir/sh4'], kind => 'shell')" ],
	[ 'jq_enqueue_group shell member',
	  qq{SELECT * FROM jq_enqueue_group('[{"name": "s", "kind": "shell", "command": "touch $dir/sh5"}]')} ],
	[ 'jq_enqueue_group argv member without kind',
	  qq{SELECT * FROM jq_enqueue_group('[{"name": "s", "argv": ["/usr/bin/touch", "$dir/sh6"]}]')} ],
	[ 'jq_schedule kind shell', "SELECT jq_schedule('malsh7', 'every 1 second', 'touch $dir/sh7', kind => 'shell')" ],
	[ 'jq_schedule argv', "SELECT jq_schedule('malsh8', 'every 1 second', kind => 'shell', argv => ARRAY['/usr/bin/touch', '$dir/sh8'])" ],
	[ 'jq_schedule group with a shell member',
	  qq{SELECT jq_schedule('malsh9', 'every 1 second', jobs => '[{"name": "s", "kind": "shell", "command": "touch $dir/sh9"}]')} ],
	[ 'jq_enqueue kind in capitals', "SELECT jq_enqueue('touch $dir/sh10', kind => 'SHELL')" ],
	[ 'jq_enqueue kind with a space', "SELECT jq_enqueue('touch $dir/sh11', kind => 'shell ')" ],
	[ 'from inside an SQL job',
	  "SELECT jq_enqueue('SELECT jq_enqueue(''touch $dir/sh12'', kind => ''shell'')')" ],
	[ 'jq_enqueue_bulk kind shell from inside an SQL job',
	  "SELECT jq_enqueue('SELECT jq_enqueue_bulk(ARRAY[''touch $dir/sh13''], kind => ''shell'')')" ],
);
for my $s (@shell)
{
	psql_as($node, 'mallory', "$s->[1];");
}
sleep 3;
for my $i (0 .. $#shell)
{
	my $n = $i + 1;
	ok(!-e "$dir/sh$n", "shell job without the right, by $shell[$i][0]: nothing ran");
}
is(sq(q{SELECT string_agg(coalesce(command, argv::text), ', ') FROM jq_jobs
		WHERE owner = 'mallory'::regrole AND kind <> 'sql' AND coalesce(command, argv::text) LIKE '%touch%'}), '',
	'shell jobs without the right: mallory has no shell job');

# a role that had the right, enqueued shell jobs (direct, grouped,
# scheduled, and one to retry), then lost it
sq(qq{
CREATE ROLE carol LOGIN IN ROLE pg_execute_server_program;
SELECT jq_configure_queue('carolhold', paused => true);
});
my $retry_id = sq(qq{SET ROLE carol;
SELECT jq_enqueue('test -e $dir/c_go && touch $dir/c_retry || exit 1', kind => 'shell', max_attempts => 1)});
wait_jobs($retry_id);
is(sq("SELECT state FROM jq_jobs WHERE id = $retry_id"), 'failed', 'lost right: the job to retry failed once');
sq(qq{SET ROLE carol;
SELECT jq_enqueue('touch $dir/c1', kind => 'shell', queue => 'carolhold');
SELECT jq_enqueue_shell(argv => ARRAY['/usr/bin/touch', '$dir/c2'], queue => 'carolhold');
SELECT * FROM jq_enqueue_group('[{"name": "s", "kind": "shell", "command": "touch $dir/c3", "queue": "carolhold"}]');
SELECT jq_schedule('carolsh', 'every 1 second', 'touch $dir/c4', kind => 'shell', queue => 'carolhold');
SELECT jq_schedule('carolgsh', 'every 1 second',
	jobs => '[{"name": "s", "kind": "shell", "command": "touch $dir/c5", "queue": "carolhold"}]');
});
ok($node->poll_query_until('postgres',
	q{SELECT count(DISTINCT schedule_name) = 2 FROM jq_jobs WHERE owner = 'carol'::regrole}),
	'lost right: the schedules fired');
open(my $go, '>', "$dir/c_go") or die;
close($go);
sq(q{REVOKE pg_execute_server_program FROM carol});
psql_as($node, 'carol', "SELECT jq_retry($retry_id)");
sq(q{SELECT jq_resume('carolhold')});
sleep 3;
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM jq_jobs WHERE owner = 'carol'::regrole AND state IN ('ready', 'running')}),
	'lost right: no job of carol is left to run');
for my $c ([ c1 => 'direct' ], [ c2 => 'argv' ], [ c3 => 'group member' ], [ c4 => 'schedule' ],
	[ c5 => 'schedule of a group' ], [ c_retry => 'jq_retry after the loss' ])
{
	ok(!-e "$dir/$c->[0]", "shell job of a role that lost the right, $c->[1]: did not run in the server");
}
is(sq(q{SELECT count(*) FROM jq_jobs WHERE owner = 'carol'::regrole AND kind = 'shell'
		AND state NOT IN ('failed', 'cancelled')}), '0',
	'lost right: every shell job of carol ended failed');
psql_as($node, 'carol', q{SELECT jq_unschedule('carolsh'); SELECT jq_unschedule('carolgsh')});
psql_as($node, 'mallory', q{SELECT jq_unschedule('malsh7'), jq_unschedule('malsh8'), jq_unschedule('malsh9')});

# ======================================================================
# 6. other roles' jobs and schedules through the API
# ======================================================================
my $lease_before = sq("SELECT lease_expires_at FROM jq_jobs WHERE id = $alice_held");
my @others = (
	[ 'jq_cancel of a ready job', "SELECT jq_cancel($alice_ready)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_ready") eq 'ready' } ],
	[ 'jq_cancel of a scheduled job', "SELECT jq_cancel($alice_later)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_later") eq 'scheduled' } ],
	[ 'jq_cancel of a held job', "SELECT jq_cancel($alice_held)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_held") eq 'running' } ],
	[ 'jq_retry of a failed job', "SELECT jq_retry($alice_failed)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_failed") eq 'failed' } ],
	[ 'jq_retry of a failed SQL job', "SELECT jq_retry($alice_err)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_err") eq 'failed' } ],
	[ 'jq_complete', "SELECT jq_complete($alice_held, '{\"by\": \"mallory\"}', $alice_held_attempt)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_held") eq 'running' } ],
	[ 'jq_complete without attempt', "SELECT jq_complete($alice_held)",
	  sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_held") eq 'running' } ],
	[ 'jq_fail', "SELECT jq_fail($alice_held, 'mallory', false, $alice_held_attempt)",
	  sub { sq("SELECT state || coalesce(last_error, '') FROM jq_jobs WHERE id = $alice_held") eq 'running' } ],
	[ 'jq_heartbeat', "SELECT jq_heartbeat($alice_held, '1000 years', $alice_held_attempt)",
	  sub { sq("SELECT lease_expires_at FROM jq_jobs WHERE id = $alice_held") eq $lease_before } ],
	[ 'jq_dequeue of her queue', q{SELECT id, command, payload FROM jq_dequeue('aliceready', 10)},
	  sub { $_[0] !~ /ALICE/ && sq("SELECT state FROM jq_jobs WHERE id = $alice_ready") eq 'ready' } ],
	[ 'jq_dequeue of any queue',
	  q{SELECT id, command, payload FROM jq_dequeue(NULL, 100, queues => ARRAY['aliceext', 'aliceready', 'alicehold', 'default'])},
	  sub { $_[0] !~ /ALICE/ && sq("SELECT state FROM jq_jobs WHERE id = $alice_ready") eq 'ready' } ],
	[ 'jq_unschedule', q{SELECT jq_unschedule('ALICESCHED')},
	  sub { sq(q{SELECT count(*) FROM jq.schedule WHERE name = 'ALICESCHED'}) eq '1' } ],
	[ 'jq_schedule replacing hers', q{SELECT jq_schedule('ALICESCHED', '* * * * *', 'ALTER ROLE mallory SUPERUSER')},
	  sub { sq(q{SELECT owner::regrole || ' ' || command FROM jq.schedule WHERE name = 'ALICESCHED'})
			  eq q{alice SELECT 'ALICESCHEDCMD'} } ],
	[ 'jq_enqueue with unique_key of hers', q{SELECT jq_enqueue('SELECT 1', unique_key => 'ALICEKEY1')},
	  sub { $_[0] !~ /\b$alice_later\b/ } ],
	[ 'jq_configure_queue of her queue', q{SELECT jq_configure_queue('aliceext', paused => true)},
	  sub { sq(q{SELECT paused FROM jq.queue WHERE name = 'aliceext'}) eq 'f' } ],
	[ 'jq_pause of her queue', q{SELECT jq_pause('aliceext')},
	  sub { sq(q{SELECT paused FROM jq.queue WHERE name = 'aliceext'}) eq 'f' } ],
	[ 'jq_resume of her paused queue', q{SELECT jq_resume('alicehold')},
	  sub { sq(q{SELECT paused FROM jq.queue WHERE name = 'alicehold'}) eq 't' } ],
);
for my $fn (qw(jq_progress jq_wait))
{
	push @others, [ "$fn of her job", "SELECT * FROM $fn($alice_held)", sub { $_[0] !~ /ALICE/ } ]
	  if has_function($fn);
}
push @others, [ 'jq_run_sql of her held job', "SELECT jq_run_sql($alice_held, $alice_held_attempt)",
	sub { sq("SELECT state FROM jq_jobs WHERE id = $alice_held") eq 'running' } ]
  if has_function('jq_run_sql');
for my $o (@others)
{
	my ($name, $sql, $check) = @$o;
	my ($out, $err) = psql_as($node, 'mallory', "$sql;");
	my $effects = hostile_effects($node, $err);
	$effects .= 'her job or schedule changed, or mallory learnt of it' unless $check->("$out\n$err");
	is($effects, '', "alice's job through mallory's $name");
	hostile_reset($node) if $effects ne '';
}

# what mallory is told about alice's jobs is what she is told about jobs
# that do not exist: she cannot learn which ids are alice's
my $missing = sq('SELECT max(id) + 1000 FROM jq_jobs');
for my $form (
	[ 'jq_cancel', 'SELECT jq_cancel(%d)' ],
	[ 'jq_retry', 'SELECT jq_retry(%d)' ],
	[ 'jq_complete', 'SELECT jq_complete(%d, NULL, 1)' ],
	[ 'jq_fail', q{SELECT jq_fail(%d, 'x', true, 1)} ],
	[ 'jq_heartbeat', q{SELECT jq_heartbeat(%d, '1 minute', 1)} ],
	has_function('jq_run_sql') ? ([ 'jq_run_sql', 'SELECT jq_run_sql(%d, 1)' ]) : ())
{
	my ($name, $fmt) = @$form;
	my ($out_none, $err_none) = psql_as($node, 'mallory', sprintf($fmt, $missing) . ';');
	$_ =~ s/\b$missing\b/N/g for ($out_none, $err_none);
	my @told;
	for my $target ([ $alice_held, 'held' ], [ $alice_failed, 'failed' ], [ $alice_later, 'scheduled' ])
	{
		my ($out_alice, $err_alice) = psql_as($node, 'mallory', sprintf($fmt, $target->[0]) . ';');
		$_ =~ s/\b$target->[0]\b/N/g for ($out_alice, $err_alice);
		push @told, "$target->[1]: $out_alice$err_alice" if "$out_alice$err_alice" ne "$out_none$err_none";
	}
	is(join("\n", @told), '', "$name on alice's held, failed and scheduled jobs: answered as for a job that does not exist");
}

for my $form (
	[ 'jq_enqueue depends_on', 'SELECT jq_enqueue(\'SELECT 1\', depends_on => ARRAY[%d])' ],
	[ 'jq_enqueue_group depends_on',
	  q{SELECT * FROM jq_enqueue_group('[{"name": "x", "command": "SELECT 1", "depends_on": [%d]}]')} ])
{
	my ($name, $fmt) = @$form;
	my $count = sq(q{SELECT count(*) FROM jq.job WHERE owner = 'mallory'::regrole});
	my (undef, $err_alice) = psql_as($node, 'mallory', sprintf($fmt, $alice_later) . ';');
	my (undef, $err_none) = psql_as($node, 'mallory', sprintf($fmt, $missing) . ';');
	s/\b($alice_later|$missing)\b/N/g for ($err_alice, $err_none);
	s/^psql:[^\n]*?(ERROR|HINT)/$1/mg for ($err_alice, $err_none);
	is(sq(q{SELECT count(*) FROM jq.job WHERE owner = 'mallory'::regrole}), $count,
		"$name on alice's job: no job");
	is($err_alice, $err_none, "$name on alice's job: answered as for a job that does not exist");
}

# ======================================================================
# a job that traps its timeout and its cancellation does not hold the
# database's executor from other roles' jobs (each loop ends by itself
# after 15 s, so that a failure costs no more)
# ======================================================================
my $trap = q{DO $$
DECLARE t timestamptz := clock_timestamp();
BEGIN
	WHILE clock_timestamp() < t + interval '15 seconds' LOOP
		BEGIN
			PERFORM pg_sleep(0.2);
		EXCEPTION WHEN query_canceled THEN NULL;
		END;
	END LOOP;
END $$};
(my $trap_q = $trap) =~ s/'/''/g;
for my $how ('its timeout', 'jq_cancel')
{
	my $timeout = $how eq 'jq_cancel' ? "'1 hour'" : "'1 second'";
	my $m = sq("SET ROLE mallory; SELECT jq_enqueue('$trap_q', timeout => $timeout, max_attempts => 1)");
	wait_for_job_state($node, 'postgres', $m, 'running');
	my $a = sq(q{SET ROLE alice; SELECT jq_enqueue('SELECT 1', max_attempts => 1)});
	psql_as($node, 'mallory', "SELECT jq_cancel($m)") if $how eq 'jq_cancel';
	my $freed = wait_until(
		sub { sq("SELECT count(*) FROM jq_jobs WHERE id IN ($m, $a) AND state IN ('succeeded', 'failed', 'cancelled')") eq '2' },
		8);
	ok($freed, "a job of mallory's that traps $how ends, and alice's next job runs");
	wait_jobs("$m, $a");
}

done_testing();
