# Hostile roles against job_queue's external workers and notifications
# (006_hostile covers the in-server executors).  Each attack checks that
# its effect is absent, not only that an error was raised:
#
#  7. jq_worker --kinds sql connected as a superuser, as a member of
#     jq_admin and as a member of jq_worker runs SQL jobs of an
#     unprivileged role (mallory) with mallory's rights only; jq_run_sql
#     attacked directly: a job not held, another role's job, a stale
#     attempt, a replay, and state left by one role's job in the caller's
#     session for the next job or for the caller;
#  5. shell jobs of a role that lost pg_execute_server_program after
#     enqueueing them (direct, argv, group member, schedule) are neither
#     handed out by jq_dequeue nor run by jq_worker;
#  8. turning NOTIFY on (jq_listen) is a right, and it ends with UNLISTEN,
#     DISCARD ALL and the end of the session.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use IPC::Run;
use Time::HiRes qw(sleep time);

$PostgreSQL::Test::Utils::timeout_default = 60
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

# only external workers run jobs here
my $node = hostile_node('hostile_workers', 'jq.execute_in_server = off');
my $su = $node->safe_psql('postgres', 'SELECT current_user');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $has_worker_role =
  $node->safe_psql('postgres', q{SELECT count(*) FROM pg_roles WHERE rolname = 'jq_worker'}) eq '1';
my $has_run_sql =
  $node->safe_psql('postgres', q{SELECT count(*) FROM pg_proc WHERE proname = 'jq_run_sql'}) eq '1';
$node->safe_psql('postgres', 'CREATE ROLE wadmin LOGIN IN ROLE jq_admin');
$node->safe_psql('postgres',
	'CREATE ROLE wk LOGIN' . ($has_worker_role ? ' IN ROLE jq_worker' : ''));
$node->safe_psql('postgres', q{
CREATE TABLE mal.runs (tag text);
GRANT ALL ON mal.runs TO mallory;
CREATE TABLE alice.runs (tag text);
ALTER TABLE alice.runs OWNER TO alice;
});
log_since($node);

sub sq { return $node->safe_psql('postgres', shift); }

sub wait_jobs { return hostile_wait_jobs($node, @_); }
sub no_effect { return hostile_no_effect($node, @_); }

# jq_worker as $role, for the queues and kinds given: its pid
my @worker_pids;
sub start_worker
{
	my ($role, $name, @args) = @_;
	my $pid = start_jq_worker($name, '--dsn', $node->connstr('postgres') . " user=$role",
		'--recheck', '1', @args);
	push @worker_pids, $pid;
	return $pid;
}

sub stop_worker
{
	my ($pid) = @_;
	defined stop_child($pid, 30) or kill 'KILL', $pid;
	return;
}

END
{
	kill 'KILL', @worker_pids if @worker_pids;
}

# A psql session kept open: send SQL, read what it printed.
sub session_start
{
	my ($role) = @_;
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres') . " user=$role" ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	return \%s;
}

sub session_run
{
	my ($s, $sql) = @_;
	$s->{out} = '';
	$s->{err} = '';
	$s->{in} .= "$sql;\n\\echo __done__\n";
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($s->{out} =~ /__done__/)
	{
		die "session timed out: $s->{err}" if time > $deadline;
		$s->{h}->pump_nb;
		sleep 0.02;
	}
	$s->{out} =~ s/__done__\n?//;
	return ($s->{out}, $s->{err});
}

sub session_end
{
	my ($s) = @_;
	$s->{in} .= "\\q\n";
	$s->{h}->finish;
	return;
}

# ======================================================================
# 7. jq_worker connected as a privileged role runs mallory's SQL jobs
# ======================================================================
my @sql_attacks = (
	[ 'ALTER ROLE SUPERUSER', 'ALTER ROLE mallory SUPERUSER' ],
	[ 'RESET ROLE', 'RESET ROLE; ALTER ROLE mallory SUPERUSER' ],
	[ "set_config('role')", "SELECT set_config('role', '$su', false); ALTER ROLE mallory SUPERUSER" ],
	[ 'SET SESSION AUTHORIZATION', "SET SESSION AUTHORIZATION $su; ALTER ROLE mallory SUPERUSER" ],
	[ 'GRANT jq_admin', 'GRANT jq_admin TO mallory' ],
	[ 'copying the secret', q{INSERT INTO mal.loot SELECT 'worker job', v FROM public.secret} ],
	[ 'reading the secret', 'SELECT v FROM public.secret' ],
	[ "reading alice's table", 'SELECT v FROM alice.private' ],
	[ 'COPY TO PROGRAM', 'COPY (SELECT 1) TO PROGRAM \'touch %DIR%/w_copy_%W%\'' ],
	[ 'pg_read_file', q{SELECT pg_read_file('postgresql.conf') AS v} ],
	[ 'look-alikes left in the search path',
	  q{SET search_path = mal, pg_catalog, public; SELECT now() = now() AS x, lower('x'), count(*) FROM jq_jobs} ],
	[ 'look-alike types left by set_config',
	  q{SELECT set_config('search_path', 'maltype, mal, pg_catalog, public', false)} ],
	[ 'deferred trigger for the commit',
	  q{INSERT INTO mal.deferred VALUES (1)} ],
	[ 'WITH HOLD cursor for the commit',
	  q{DECLARE mal_cur CURSOR WITH HOLD FOR SELECT mal.trojan('holdable cursor')} ],
);
psql_as($node, 'mallory', q{
CREATE TABLE mal.deferred (x int);
CREATE FUNCTION mal.deferred_trojan() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN PERFORM mal.trojan(''deferred trigger''); RETURN NULL; END';
CREATE CONSTRAINT TRIGGER mal_deferred AFTER INSERT ON mal.deferred
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mal.deferred_trojan();
});

for my $w ([ $su => 'superuser' ], [ wadmin => 'jq_admin member' ],
	$has_worker_role ? ([ wk => 'jq_worker member' ]) : ())
{
	my ($role, $what) = @$w;
	(my $tagw = $what) =~ s/\W+/_/g;
	my @ids;
	for my $a (@sql_attacks)
	{
		my ($name, $cmd) = @$a;
		$cmd =~ s/%DIR%/$dir/g;
		$cmd =~ s/%W%/$tagw/g;
		$cmd = "SET mal.tag = 'worker $tagw/$name'; $cmd";
		$cmd =~ s/'/''/g;
		push @ids, sq("SET ROLE mallory; SELECT jq_enqueue('$cmd', queue => 'extsql_$tagw', max_attempts => 1)");
	}
	my $pid = start_worker($role, "w_$tagw", '--kinds', 'sql', '--queue', "extsql_$tagw");
	ok(wait_jobs(join(',', @ids)), "jq_worker as $what: every job of mallory ended");
	stop_worker($pid);
	my $log = log_since($node);
	for my $i (0 .. $#sql_attacks)
	{
		my $name = $sql_attacks[$i][0];
		my $result = sq("SELECT coalesce(result::text, '') FROM jq_jobs WHERE id = $ids[$i]");
		my $tag = "worker $tagw/$name:";
		my $effects = hostile_effects($node, join("\n", grep { /\Q$tag\E/ } split /\n/, $log));
		$effects .= ' the secret is in the result' if $result =~ /TOPSECRET|ALICE-PRIVATE/;
		$effects .= ' the program ran' if -e "$dir/w_copy_$tagw";
		$effects .= ' the server file was read' if $result =~ /shared_preload_libraries/;
		$effects .= ' mallory is in jq_admin'
		  if sq(q{SELECT pg_has_role('mallory', 'jq_admin', 'MEMBER')}) eq 't';
		is($effects, '', "SQL job run by jq_worker as $what: $name");
		hostile_reset($node) if $effects ne '';
	}
	my @pwned = $log =~ /(PWNED\[[^\n]*)/g;
	is(join('; ', @pwned), '', "jq_worker as $what: no code of mallory's ran with another role's rights");
}

# ----------------------------------------------------------------------
# jq_run_sql attacked directly
# ----------------------------------------------------------------------
SKIP:
{
	skip 'jq_run_sql does not exist', 13 unless $has_run_sql;

	my $job = sub {
		my ($owner, $cmd, $queue) = @_;
		$cmd =~ s/'/''/g;
		return sq("SET ROLE $owner; SELECT jq_enqueue('$cmd', queue => '$queue', max_attempts => 3)");
	};

	# a job mallory does not hold
	my $ready = $job->('mallory', q{INSERT INTO mal.runs VALUES ('not held')}, 'rs_ready');
	my ($out, $err) = psql_as($node, 'mallory', "SELECT jq_run_sql($ready, 1) IS NULL AS not_held");
	is(sq(q{SELECT count(*) FROM mal.runs WHERE tag = 'not held'}) . sq("SELECT state FROM jq_jobs WHERE id = $ready"),
		'0ready', 'jq_run_sql of a job not held: it did not run');

	# alice's held job
	my $alice_job = $job->('alice', q{INSERT INTO alice.runs VALUES ('run by someone')}, 'rs_alice');
	my ($aid, $aatt) = split /\|/,
	  sq(qq{SET ROLE alice; SELECT id, attempt FROM jq_dequeue('rs_alice', 1)});
	($out, $err) = psql_as($node, 'mallory', "SELECT jq_run_sql($aid, $aatt)");
	is(sq(q{SELECT count(*) FROM alice.runs}) . sq("SELECT state FROM jq_jobs WHERE id = $aid"),
		'0running', "jq_run_sql of alice's held job by mallory: it did not run");
	($out, $err) = psql_as($node, 'mallory', "SELECT * FROM jq_dequeue('rs_alice', 1)");
	unlike($out, qr/run by someone/, "jq_dequeue by mallory does not hand her alice's job");

	# a stale attempt
	my $stale = $job->('mallory', q{INSERT INTO mal.runs VALUES ('stale')}, 'rs_stale');
	my ($sid, $satt) = split /\|/, sq(q{SET ROLE mallory; SELECT id, attempt FROM jq_dequeue('rs_stale', 1)});
	sq("SET ROLE mallory; SELECT jq_fail($sid, 'again', true, $satt)");
	wait_until(sub { sq("SET ROLE mallory; SELECT count(*) FROM jq_dequeue('rs_stale', 1)") eq '1' });
	($out, $err) = psql_as($node, 'mallory', "SELECT jq_run_sql($sid, $satt) IS NULL");
	is(sq(q{SELECT count(*) FROM mal.runs WHERE tag = 'stale'}), '0',
		'jq_run_sql with a stale attempt: the job did not run');

	# a replay of a finished attempt
	my $once = $job->('mallory', q{INSERT INTO mal.runs VALUES ('once')}, 'rs_once');
	my ($oid, $oatt) = split /\|/, sq(q{SET ROLE mallory; SELECT id, attempt FROM jq_dequeue('rs_once', 1)});
	psql_as($node, 'mallory', "SELECT jq_run_sql($oid, $oatt); SELECT jq_run_sql($oid, $oatt);");
	psql_as($node, 'mallory', "SELECT jq_run_sql($oid, $oatt)");
	is(sq(q{SELECT count(*) FROM mal.runs WHERE tag = 'once'}), '1',
		'jq_run_sql replayed: the job ran once');

	# run by a superuser and by a jq_worker member: mallory's rights only
	for my $caller ($su, 'wk')
	{
		my $esc = $job->('mallory', q{RESET ROLE; ALTER ROLE mallory SUPERUSER}, "rs_esc_$caller");
		my $sec = $job->('mallory', q{INSERT INTO mal.loot SELECT 'run_sql', v FROM public.secret}, "rs_esc_$caller");
		($out, $err) = psql_as($node, $caller, qq{
SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('rs_esc_$caller', 10) d;
});
		no_effect("jq_run_sql called by " . ($caller eq $su ? 'a superuser' : 'a jq_worker member')
			  . ": mallory's jobs run with her rights", $err);
	}

	# state left by one job in the caller's session, for the next job of
	# another role and for the caller itself (a superuser worker)
	my $alice_lo = sq(q{SET ROLE alice; SELECT lo_from_bytea(0, 'ALICE-LO-SECRET')});
	sq(q{SET ROLE alice; CREATE TABLE alice.uniq (x int UNIQUE DEFERRABLE INITIALLY IMMEDIATE)});
	my @pairs = (
		[ 'large object descriptor',
		  [ alice => "SELECT lo_open($alice_lo, 393216) AS fd" ],
		  [ mallory => q{SELECT convert_from(loread(0, 100), 'UTF8') AS v} ],
		  sub { $_[1] !~ /ALICE-LO-SECRET/ } ],
		[ 'SET CONSTRAINTS',
		  [ mallory => 'SET CONSTRAINTS ALL DEFERRED' ],
		  [ alice => 'INSERT INTO alice.uniq VALUES (1); INSERT INTO alice.uniq VALUES (1); DELETE FROM alice.uniq' ],
		  sub { $_[1] ne 'succeeded' } ],
		[ 'custom setting',
		  [ alice => q{SELECT set_config('app.secret', 'ALICE-GUC', false)} ],
		  [ mallory => q{SELECT current_setting('app.secret', true) AS v} ],
		  sub { $_[1] !~ /ALICE-GUC/ } ],
		[ 'WITH HOLD cursor',
		  [ alice => q{DECLARE alice_cur CURSOR WITH HOLD FOR SELECT v FROM alice.private} ],
		  [ mallory => 'FETCH ALL FROM alice_cur' ],
		  sub { $_[1] !~ /ALICE-PRIVATE/ } ],
	);
	my $n = 0;
	for my $p (@pairs)
	{
		my ($name, $first, $second, $check) = @$p;
		$n++;
		my $q = "rs_pair_$n";
		my $id1 = $job->($first->[0], $first->[1], $q);
		my $id2 = $job->($second->[0], $second->[1], $q);
		sq(qq{UPDATE jq.job SET max_attempts = 1 WHERE id IN ($id1, $id2)});
		my ($o, $e) = psql_as($node, $su, qq{
BEGIN;
SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('$q', 2) d ORDER BY d.id;
COMMIT;
});
		my @results = map { sq("SELECT coalesce(result::text, state) FROM jq_jobs WHERE id = $_") } ($id1, $id2);
		ok($check->(@results), "state carried between jobs run by jq_run_sql in one transaction: $name")
		  or diag("results: @results; $e");
	}

	# what mallory's job leaves for the superuser caller's session
	my $left = $job->('mallory', q{SET search_path = mal, pg_catalog, public;
SELECT set_config('mal.tag', 'left for the caller', false);
PREPARE jq_complete_stmt AS SELECT mal.trojan('prepared statement');
CREATE TEMP VIEW pg_stat_activity AS SELECT mal.trojan('temporary view') AS x;
SET CONSTRAINTS ALL DEFERRED}, 'rs_left');
	($out, $err) = psql_as($node, $su, q{
SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('rs_left', 1) d;
SELECT 'path=' || current_setting('search_path');
SELECT count(*) FROM pg_prepared_statements;
SELECT count(*) FROM pg_stat_activity WHERE x = 1;
SELECT now() = now(), lower('X');
});
	unlike($out, qr/path=.*mal/, "jq_run_sql: mallory's search_path does not stay in the caller's session");
	no_effect("jq_run_sql: nothing mallory's job left runs with the caller's rights", $err);
}

# ======================================================================
# 5. shell jobs of a role that lost the right, and external workers
# ======================================================================
sq(q{CREATE ROLE carol LOGIN IN ROLE pg_execute_server_program});
my @carol = (
	[ 'direct', "SELECT jq_enqueue('touch $dir/c1', kind => 'shell', queue => 'carolext')" ],
	[ 'argv', "SELECT jq_enqueue_shell(argv => ARRAY['/usr/bin/touch', '$dir/c2'], queue => 'carolext')" ],
	[ 'group member',
	  qq{SELECT id FROM jq_enqueue_group('[{"name": "s", "kind": "shell", "command": "touch $dir/c3", "queue": "carolext"}]')} ],
	[ 'schedule', "SELECT jq_schedule('carolsh', 'every 1 second', 'touch $dir/c4', kind => 'shell', queue => 'carolext')" ],
	[ 'schedule of a group',
	  qq{SELECT jq_schedule('carolgsh', 'every 1 second', jobs => '[{"name": "s", "kind": "shell", "command": "touch $dir/c5", "queue": "carolext"}]')} ],
);
psql_as($node, 'carol', join(";\n", map { $_->[1] } @carol) . ";\n");
ok($node->poll_query_until('postgres',
	q{SELECT count(DISTINCT schedule_name) = 2 FROM jq_jobs WHERE owner = 'carol'::regrole}),
	'lost right: the schedules fired');
sq(q{REVOKE pg_execute_server_program FROM carol});
# the schedules fire again after the loss
sleep 1.5;
my ($deq) = psql_as($node, $su, q{SELECT id, command, argv FROM jq_dequeue('carolext', 100)});
is($deq, '', "lost right: jq_dequeue by a superuser hands out none of carol's shell jobs");
my $wpid = start_worker($su, 'carol_w', '--kinds', 'shell', '--queue', 'carolext');
sleep 3;
stop_worker($wpid);
for my $i (0 .. $#carol)
{
	my $n = $i + 1;
	ok(!-e "$dir/c$n", "shell job of a role that lost the right, $carol[$i][0]: jq_worker did not run it");
}
is(sq(q{SELECT count(*) FROM jq_jobs WHERE owner = 'carol'::regrole AND state IN ('ready', 'running')}),
	'0', "lost right: no job of carol's is left to run");
psql_as($node, 'carol', q{SELECT jq_unschedule('carolsh'); SELECT jq_unschedule('carolgsh')});

# ======================================================================
# 8. who may turn NOTIFY on, and for how long
# ======================================================================

# Whether an enqueue sends NOTIFY now: a session that LISTENs itself (which
# does not count as a listener) enqueues and hears its own notification.
sub notify_on
{
	my ($out, $err) = psql_as($node, $su, q{
LISTEN jq_jobs;
SELECT jq_enqueue('SELECT 1', queue => 'probe');
SELECT 1;
});
	return ("$out$err" =~ /Asynchronous notification "jq_jobs"/) ? 1 : 0;
}

is(notify_on(), 0, 'NOTIFY: off while no worker listens');

my $mal = session_start('mallory');
session_run($mal, 'SELECT jq_listen()');
is(notify_on(), 0, 'NOTIFY: mallory cannot turn it on with jq_listen()');
session_run($mal, 'SET ROLE jq_worker');
session_run($mal, 'SELECT jq_listen()');
is(notify_on(), 0, 'NOTIFY: mallory cannot turn it on through SET ROLE jq_worker');
session_end($mal);

# jq.notify = on, set by mallory for her session, her role, or her job:
# a session that LISTENs (without counting) hears nothing of her enqueues
{
	my $s = session_start($su);
	session_run($s, 'LISTEN jq_jobs');
	psql_as($node, 'mallory', q{SET jq.notify = 'on'; SELECT jq_enqueue('SELECT 1', queue => 'probe')});
	psql_as($node, 'mallory', q{ALTER ROLE mallory SET jq.notify = 'on'});
	psql_as($node, 'mallory', q{SELECT jq_enqueue('SELECT 1', queue => 'probe')});
	psql_as($node, 'mallory', q{SELECT set_config('jq.notify', 'on', true), jq_enqueue('SELECT 1', queue => 'probe')});
	my ($out, $err) = session_run($s, 'SELECT 1');
	unlike("$out$err", qr/Asynchronous notification/, 'NOTIFY: mallory cannot turn jq.notify on');
	session_end($s);
	sq('ALTER ROLE mallory RESET ALL');
}

# mallory's SQL job calling jq_listen(), run by a superuser's jq_run_sql in
# a session that stays open
SKIP:
{
	skip 'jq_run_sql does not exist', 1 unless $has_run_sql;
	sq(q{SET ROLE mallory; SELECT jq_enqueue('SELECT jq_listen()', queue => 'mal_listen')});
	my $s = session_start($su);
	session_run($s, q{SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('mal_listen', 1) d});
	is(notify_on(), 0, "NOTIFY: mallory's job run by a superuser's jq_run_sql cannot turn it on");
	session_end($s);
}

# a listening worker's session that runs a job with jq_run_sql: it either
# still listens and counts, or neither (never NOTIFY for nobody, never a
# listener that is not told)
SKIP:
{
	skip 'jq_run_sql or role jq_worker does not exist', 1 unless $has_run_sql && $has_worker_role;
	sq(q{SET ROLE mallory; SELECT jq_enqueue('SELECT 1', queue => 'wk_listen')});
	my $s = session_start('wk');
	session_run($s, 'SELECT jq_listen()');
	session_run($s, q{SELECT jq_run_sql(d.id, d.attempt) FROM jq_dequeue('wk_listen', 1) d});
	my ($listening) = session_run($s, 'SELECT count(*) FROM pg_listening_channels() c WHERE c = \'jq_jobs\'');
	$listening = ($listening =~ /(\d+)/)[0];
	is(notify_on(), $listening,
		'NOTIFY: a listening session that ran jq_run_sql listens if and only if it counts');
	session_end($s);
}

# a jq_worker member's session counts as a listener exactly while it
# listens, whatever the transactions around jq_listen() and UNLISTEN do
SKIP:
{
	skip 'role jq_worker does not exist', 5 unless $has_worker_role;
	for my $steps (
		[ 'jq_listen() rolled back', 'BEGIN', 'SELECT jq_listen()', 'ROLLBACK' ],
		[ 'jq_listen() in a subtransaction rolled back',
		  'BEGIN', 'SAVEPOINT s', 'SELECT jq_listen()', 'ROLLBACK TO s', 'COMMIT' ],
		[ 'jq_listen() then UNLISTEN in one transaction', 'BEGIN', 'SELECT jq_listen()', 'UNLISTEN *', 'COMMIT' ],
		[ 'UNLISTEN rolled back', 'SELECT jq_listen()', 'BEGIN', 'UNLISTEN *', 'ROLLBACK' ],
		[ 'jq_listen() twice, then UNLISTEN', 'SELECT jq_listen()', 'SELECT jq_listen()', 'UNLISTEN jq_jobs' ])
	{
		my ($name, @sql) = @$steps;
		my $s = session_start('wk');
		session_run($s, $_) for @sql;
		my ($listening) = session_run($s,
			q{SELECT count(*) FROM pg_listening_channels() c WHERE c = 'jq_jobs'});
		$listening = ($listening =~ /(\d+)/)[0];
		is(notify_on(), $listening, "NOTIFY: $name: on exactly while the session listens");
		session_end($s);
		wait_until(sub { !notify_on() }, 10);
	}
}

SKIP:
{
	skip 'role jq_worker does not exist', 4 unless $has_worker_role;
	for my $how ('UNLISTEN *', 'UNLISTEN jq_jobs', 'DISCARD ALL', 'disconnect')
	{
		my $s = session_start('wk');
		session_run($s, 'SELECT jq_listen()');
		my $on = notify_on();
		if ($how eq 'disconnect')
		{
			session_end($s);
		}
		else
		{
			session_run($s, $how);
		}
		my $off = wait_until(sub { !notify_on() }, 10);
		ok($on && $off, "NOTIFY: on for a jq_worker member's jq_listen(), off after $how");
		session_end($s) unless $how eq 'disconnect';
	}
}

done_testing();
