# Shared setup of the job_queue TAP tests.
package JobQueueTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(job_queue_node wait_until process_alive live_after
  long_shell_command wait_for_pid_file job_pids kill_leftovers
  kill_for_crash_restart start_jq_worker jq_worker_log wait_child
  wait_named_child stop_child);

# A started node that preloads job_queue.  Arguments: init => { options of
# init() }, preload => shared_preload_libraries (default 'job_queue'),
# conf => more postgresql.conf lines.
sub job_queue_node
{
	my ($name, %args) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	my $preload = $args{preload} // 'job_queue';

	$node->init(%{ $args{init} // {} });
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = '$preload'\n"
		  . "max_worker_processes = 32\n"
		  . ($args{conf} // ''));
	$node->start;
	return $node;
}

# Call $cond every 100 ms until it returns true or $timeout seconds (default:
# the test timeout) have passed; returns whether it did.
sub wait_until
{
	my ($cond, $timeout) = @_;
	my $deadline =
	  Time::HiRes::time() + ($timeout // $PostgreSQL::Test::Utils::timeout_default);

	until ($cond->())
	{
		return 0 if Time::HiRes::time() >= $deadline;
		Time::HiRes::sleep(0.1);
	}
	return 1;
}

# Whether process $pid runs: it exists and is not a zombie (a killed orphan
# may stay a zombie until init reaps it).
sub process_alive
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return 0;
	my $stat = <$fh> // '';
	close($fh);
	# the state follows the command name, the last field in parentheses
	my ($state) = $stat =~ /.*\)\s+(\S)/s;
	return defined($state) && $state ne 'Z';
}

# The processes of @$pids still running after up to $timeout seconds.
sub live_after
{
	my ($timeout, $pids) = @_;
	wait_until(sub { !grep { process_alive($_) } @$pids }, $timeout);
	return grep { process_alive($_) } @$pids;
}

# A shell job's command line that runs long the first time: in its working
# directory it creates $tag.ran, then starts an orphaned grandchild and a
# child that sleep, writes their pids and its own to $tag.orphan,
# $tag.child and (last) $tag.leader, and waits.  Run again, it prints
# "rerun, attempt N" and exits 0 at once.  With trap_term => 1, every
# process of the job ignores SIGTERM.
sub long_shell_command
{
	my ($tag, %args) = @_;
	my $trap = $args{trap_term} ? "trap '' TERM\n" : '';
	return qq{${trap}if [ -e $tag.ran ]; then echo "rerun, attempt \$JQ_ATTEMPT"; exit 0; fi
touch $tag.ran
(sleep 1000 & echo \$! > $tag.orphan.tmp; mv $tag.orphan.tmp $tag.orphan)
sleep 1000 & echo \$! > $tag.child.tmp; mv $tag.child.tmp $tag.child
echo \$\$ > $tag.leader.tmp; mv $tag.leader.tmp $tag.leader
wait};
}

# The pid a job wrote to $path, once it is there; dies if it never is.
sub wait_for_pid_file
{
	my ($path) = @_;
	my $pid = '';
	wait_until(sub { $pid = -f $path ? slurp_file($path) : ''; $pid =~ /^\d+\s*$/ })
	  or die "no pid in $path";
	return $pid + 0;
}

# The pids a long_shell_command job $tag wrote in $dir: leader, child,
# orphan; waits for the job to write them.
sub job_pids
{
	my ($dir, $tag) = @_;
	my $leader = wait_for_pid_file("$dir/$tag.leader");
	return ($leader, map { wait_for_pid_file("$dir/$tag.$_") } qw(child orphan));
}

# SIGKILL what is left of @pids, so that a failed test leaves nothing
# running on the machine.
sub kill_leftovers
{
	my @live = grep { process_alive($_) } @_;
	kill 'KILL', @live if @live;
	return scalar(@live);
}

# SIGKILL server process $pid, then wait until the postmaster has restarted
# the cluster and accepts connections again.
sub kill_for_crash_restart
{
	my ($node, $pid) = @_;
	my $log_offset = -s $node->logfile;

	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
	return 1;
}

# ----------------------------------------------------------------------
# Jobs and workers as the server shows them
# ----------------------------------------------------------------------

push @EXPORT, qw(wait_for_job_state worker_count wait_for_worker_count worker_pid);

# Wait until job $id of database $dbname is in $state (as jq_jobs shows
# it); returns whether it came to that state before the test timeout.
sub wait_for_job_state
{
	my ($node, $dbname, $id, $state) = @_;
	return $node->poll_query_until($dbname, "SELECT state FROM jq_jobs WHERE id = $id",
		$state);
}

# The pg_stat_activity rows of job_queue's workers of one kind ($type:
# launcher, scheduler, executor, shell executor; every kind when undef),
# in database $dbname when it is given.
sub worker_query
{
	my ($what, $type, $dbname) = @_;
	my $kind =
	  defined $type
	  ? "backend_type = 'job_queue $type'"
	  : "backend_type LIKE 'job_queue%'";
	my $where = defined $dbname ? " AND datname = '$dbname'" : '';
	return "SELECT $what FROM pg_stat_activity WHERE $kind$where";
}

# How many job_queue workers of kind $type run (in $dbname when given).
sub worker_count
{
	my ($node, $type, $dbname) = @_;
	return $node->safe_psql('postgres', worker_query('count(*)', $type, $dbname));
}

# Wait until $count job_queue workers of kind $type run (in $dbname when
# given); returns whether they did before the test timeout.
sub wait_for_worker_count
{
	my ($node, $type, $count, $dbname) = @_;
	return $node->poll_query_until('postgres', worker_query('count(*)', $type, $dbname),
		$count);
}

# The pid of the job_queue worker of kind $type (the launcher, or the
# scheduler of $dbname).
sub worker_pid
{
	my ($node, $type, $dbname) = @_;
	return $node->safe_psql('postgres', worker_query('pid', $type, $dbname));
}

# ----------------------------------------------------------------------
# Shared setup of the hostile tests (006_hostile, 007_hostile_workers)
# ----------------------------------------------------------------------

push @EXPORT, qw(hostile_node hostile_setup psql_as hostile_effects hostile_reset
  hostile_no_effect hostile_wait_jobs log_since);

# A started node with job_queue, fast retries, the settings $conf and the
# cast of hostile_setup.
sub hostile_node
{
	my ($name, $conf) = @_;
	my $node = job_queue_node($name, conf => "jq.retry_backoff_base = '50ms'\n"
		  . "jq.retry_backoff_cap = '100ms'\n$conf");
	$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');
	hostile_setup($node);
	log_since($node);
	return $node;
}

# Wait for the jobs $ids (comma-separated) to end.
sub hostile_wait_jobs
{
	my ($node, $ids) = @_;
	return 1 if $ids eq '';
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM jq_jobs WHERE id IN ($ids) "
		  . "AND state NOT IN ('succeeded', 'failed', 'cancelled')");
}

# Test that the attack $name left no effect; $text is what it printed (the
# server's log since the last look is read too).  Undoes what it finds.
sub hostile_no_effect
{
	my ($node, $name, $text) = @_;
	my $effects = hostile_effects($node, ($text // '') . "\n" . log_since($node));
	Test::More::is($effects, '', $name);
	hostile_reset($node) if $effects ne '';
	return $effects eq '';
}

# Run $sql as $role in database postgres without stopping at errors:
# (stdout, stderr).
sub psql_as
{
	my ($node, $role, $sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', $sql,
		connstr => $node->connstr('postgres') . " user=$role",
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	return ($out, $err);
}

# What the server logged since the last call (per node).
my %log_offsets;
sub log_since
{
	my ($node) = @_;
	my $offset = $log_offsets{ $node->name } // 0;
	my $log = slurp_file($node->logfile, $offset);
	$log_offsets{ $node->name } = $offset + length($log);
	return $log;
}

# The hostile cast: an unprivileged LOGIN role mallory with schema mal of
# its own (and maltype, for look-alike types), a victim alice with a
# private table, and a superuser-owned secret.  mal holds look-alikes of
# pg_catalog's operators, functions, aggregates and catalog views; every one
# of them calls mal.trojan(what), which, when it runs as any role other
# than mallory, raises WARNING "PWNED[<mal.tag>:<what>] as <role>", makes
# mallory superuser and copies the secret into mal.loot.
sub hostile_setup
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
CREATE ROLE alice LOGIN;
CREATE SCHEMA mal AUTHORIZATION mallory;
CREATE SCHEMA maltype AUTHORIZATION mallory;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE TABLE public.secret (v text);
INSERT INTO public.secret VALUES ('TOPSECRET-42');
REVOKE ALL ON public.secret FROM PUBLIC;
SET ROLE alice;
CREATE TABLE alice.private (v text);
INSERT INTO alice.private VALUES ('ALICE-PRIVATE-7');
RESET ROLE;
});

	my @sql = (q{
GRANT USAGE ON SCHEMA mal, maltype TO PUBLIC;
CREATE TABLE mal.loot (tag text, v text);
GRANT INSERT, SELECT ON mal.loot TO PUBLIC;
CREATE FUNCTION mal.trojan(what pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tag text := coalesce(current_setting('mal.tag', true), '') || ':' || what;
BEGIN
	IF current_user::text <> 'mallory' THEN
		RAISE WARNING 'PWNED[%] as % (session %)', tag, current_user, session_user;
		BEGIN
			EXECUTE 'ALTER ROLE mallory SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
		BEGIN
			INSERT INTO mal.loot SELECT tag, s.v FROM public.secret s;
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END IF;
	RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION mal.trojan(pg_catalog.text) TO PUBLIC;
CREATE FUNCTION mal.leak(anyelement) RETURNS pg_catalog.bool
LANGUAGE plpgsql COST 0.0000001 SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE NOTICE 'LEAK:%', $1::text;
	RETURN true;
END $$;
});

	# operators: [symbol, left, right, result]
	my @ops;
	for my $t (qw(text bigint integer jsonb timestamptz oid interval name boolean anyenum anyarray))
	{
		push @ops, [ $_, $t, $t, 'boolean' ] for ('=', '<>', '<', '<=', '>', '>=');
	}
	push @ops,
	  [ '||', 'text', 'text', 'text' ], [ '||', 'jsonb', 'jsonb', 'jsonb' ],
	  [ '||', 'anyarray', 'anyarray', 'anyarray' ],
	  [ '||', 'anyarray', 'anyelement', 'anyarray' ],
	  [ '@>', 'jsonb', 'jsonb', 'boolean' ], [ '<@', 'jsonb', 'jsonb', 'boolean' ],
	  [ '@>', 'anyarray', 'anyarray', 'boolean' ], [ '<@', 'anyarray', 'anyarray', 'boolean' ],
	  [ '&&', 'anyarray', 'anyarray', 'boolean' ],
	  [ '->', 'jsonb', 'integer', 'jsonb' ], [ '->', 'jsonb', 'text', 'jsonb' ],
	  [ '->>', 'jsonb', 'integer', 'text' ], [ '->>', 'jsonb', 'text', 'text' ],
	  [ '#>>', 'jsonb', 'text[]', 'text' ], [ '?', 'jsonb', 'text', 'boolean' ],
	  [ '+', 'timestamptz', 'interval', 'timestamptz' ],
	  [ '-', 'timestamptz', 'interval', 'timestamptz' ],
	  [ '-', 'timestamptz', 'timestamptz', 'interval' ],
	  [ '+', 'bigint', 'bigint', 'bigint' ], [ '+', 'integer', 'integer', 'integer' ],
	  [ '-', 'bigint', 'bigint', 'bigint' ], [ '-', 'integer', 'integer', 'integer' ],
	  [ '*', 'interval', 'double precision', 'interval' ],
	  [ '*', 'integer', 'integer', 'integer' ], [ '~~', 'text', 'text', 'boolean' ];
	my $n = 0;
	for my $op (@ops)
	{
		my ($sym, $l, $r, $res) = @$op;
		# the setup runs with mallory's default search_path: these are pg_catalog's types
		my ($pl, $pr, $pres) = ($l, $r, $res);
		$n++;
		push @sql, qq{
CREATE FUNCTION mal.op_$n(a $pl, b $pr) RETURNS $pres LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS \$\$
BEGIN
	PERFORM mal.trojan('operator $sym ($l, $r)');
	RETURN a OPERATOR(pg_catalog.$sym) b;
END \$\$;
CREATE OPERATOR mal.$sym (LEFTARG = $pl, RIGHTARG = $pr, FUNCTION = mal.op_$n);
};
	}

	# functions: [name, arguments, result, expression of the real one]
	my @funcs = (
		[ 'now', '', 'timestamptz', 'now()' ],
		[ 'clock_timestamp', '', 'timestamptz', 'clock_timestamp()' ],
		[ 'statement_timestamp', '', 'timestamptz', 'statement_timestamp()' ],
		[ 'transaction_timestamp', '', 'timestamptz', 'transaction_timestamp()' ],
		[ 'random', '', 'double precision', 'random()' ],
		[ 'pg_backend_pid', '', 'integer', 'pg_backend_pid()' ],
		[ 'txid_current', '', 'bigint', 'txid_current()' ],
		[ 'current_setting', 'a text', 'text', 'current_setting(a)' ],
		[ 'current_setting', 'a text, b boolean', 'text', 'current_setting(a, b)' ],
		[ 'set_config', 'a text, b text, c boolean', 'text', 'set_config(a, b, c)' ],
		[ 'pg_notify', 'a text, b text', 'void', 'pg_notify(a, b)' ],
		[ 'pg_has_role', 'a name, b text', 'boolean', 'pg_has_role(a, b)' ],
		[ 'pg_has_role', 'a text, b text', 'boolean', 'pg_has_role(a, b)' ],
		[ 'has_table_privilege', 'a text, b text', 'boolean', 'has_table_privilege(a, b)' ],
		[ 'lower', 'a text', 'text', 'lower(a)' ],
		[ 'upper', 'a text', 'text', 'upper(a)' ],
		[ 'length', 'a text', 'integer', 'length(a)' ],
		[ 'btrim', 'a text', 'text', 'btrim(a)' ],
		[ 'substr', 'a text, b integer, c integer', 'text', 'substr(a, b, c)' ],
		[ 'left', 'a text, b integer', 'text', 'left(a, b)' ],
		[ 'replace', 'a text, b text, c text', 'text', 'replace(a, b, c)' ],
		[ 'split_part', 'a text, b text, c integer', 'text', 'split_part(a, b, c)' ],
		[ 'format', 'a text', 'text', 'format(a)' ],
		[ 'quote_ident', 'a text', 'text', 'quote_ident(a)' ],
		[ 'quote_literal', 'a text', 'text', 'quote_literal(a)' ],
		[ 'md5', 'a text', 'text', 'md5(a)' ],
		[ 'hashtext', 'a text', 'integer', 'hashtext(a)' ],
		[ 'date_trunc', 'a text, b timestamptz', 'timestamptz', 'date_trunc(a, b)' ],
		[ 'date_part', 'a text, b timestamptz', 'double precision', 'date_part(a, b)' ],
		[ 'to_timestamp', 'a double precision', 'timestamptz', 'to_timestamp(a)' ],
		[ 'age', 'a timestamptz', 'interval', 'age(a)' ],
		[ 'array_length', 'a anyarray, b integer', 'integer', 'array_length(a, b)' ],
		[ 'cardinality', 'a anyarray', 'integer', 'cardinality(a)' ],
		[ 'array_to_string', 'a anyarray, b text', 'text', 'array_to_string(a, b)' ],
		[ 'string_to_array', 'a text, b text', 'text[]', 'string_to_array(a, b)' ],
		[ 'to_jsonb', 'a anyelement', 'jsonb', 'to_jsonb(a)' ],
		[ 'jsonb_typeof', 'a jsonb', 'text', 'jsonb_typeof(a)' ],
		[ 'jsonb_array_length', 'a jsonb', 'integer', 'jsonb_array_length(a)' ],
		[ 'jsonb_build_object', 'a text, b text', 'jsonb', 'jsonb_build_object(a, b)' ],
		[ 'jsonb_build_object', 'a text, b bigint', 'jsonb', 'jsonb_build_object(a, b)' ],
		[ 'jsonb_build_object', 'a text, b jsonb', 'jsonb', 'jsonb_build_object(a, b)' ],
		[ 'jsonb_build_array', 'a text', 'jsonb', 'jsonb_build_array(a)' ],
		[ 'jsonb_strip_nulls', 'a jsonb', 'jsonb', 'jsonb_strip_nulls(a)' ],
		[ 'jsonb_set', 'a jsonb, b text[], c jsonb', 'jsonb', 'jsonb_set(a, b, c)' ],
		[ 'format_type', 'a oid, b integer', 'text', 'format_type(a, b)' ],
		[ 'pg_get_userbyid', 'a oid', 'name', 'pg_get_userbyid(a)' ],
		[ 'pg_advisory_xact_lock', 'a bigint', 'void', 'pg_advisory_xact_lock(a)' ],
		[ 'pg_try_advisory_xact_lock', 'a bigint', 'boolean', 'pg_try_advisory_xact_lock(a)' ],
		[ 'pg_advisory_lock', 'a bigint', 'void', 'pg_advisory_lock(a)' ],
		[ 'abs', 'a integer', 'integer', 'abs(a)' ],
		[ 'nextval', 'a regclass', 'bigint', 'nextval(a)' ],
		[ 'gen_random_uuid', '', 'uuid', 'gen_random_uuid()' ],
	);
	$n = 0;
	for my $f (@funcs)
	{
		my ($name, $args, $res, $expr) = @$f;
		$n++;
		my $call = $res eq 'void' ? "PERFORM pg_catalog.$expr; RETURN;"
		  : "RETURN pg_catalog.$expr;";
		push @sql, qq{
CREATE FUNCTION mal.$name($args) RETURNS $res LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS \$\$
BEGIN
	PERFORM mal.trojan('function $name($args)');
	$call
END \$\$;
};
	}
	# set-returning functions
	push @sql, q{
CREATE FUNCTION mal.unnest(a anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function unnest(anyarray)');
	RETURN QUERY SELECT pg_catalog.unnest(a);
END $$;
CREATE FUNCTION mal.generate_series(a bigint, b bigint) RETURNS SETOF bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function generate_series(bigint, bigint)');
	RETURN QUERY SELECT pg_catalog.generate_series(a, b);
END $$;
CREATE FUNCTION mal.generate_series(a integer, b integer) RETURNS SETOF integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function generate_series(integer, integer)');
	RETURN QUERY SELECT pg_catalog.generate_series(a, b);
END $$;
CREATE FUNCTION mal.jsonb_each_text(a jsonb, OUT key text, OUT value text) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function jsonb_each_text(jsonb)');
	RETURN QUERY SELECT * FROM pg_catalog.jsonb_each_text(a);
END $$;
CREATE FUNCTION mal.jsonb_array_elements(a jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function jsonb_array_elements(jsonb)');
	RETURN QUERY SELECT pg_catalog.jsonb_array_elements(a);
END $$;
CREATE FUNCTION mal.jsonb_object_keys(a jsonb) RETURNS SETOF text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM mal.trojan('function jsonb_object_keys(jsonb)');
	RETURN QUERY SELECT pg_catalog.jsonb_object_keys(a);
END $$;
};

	# aggregates: [name, argument, state type, initial state, step expression]
	my @aggs = (
		[ 'count', '*', 'bigint', '0', 's + 1' ],
		[ 'count', 'anyelement', 'bigint', '0', 's + 1' ],
		[ 'max', 'bigint', 'bigint', undef, 'greatest(s, v)' ],
		[ 'min', 'bigint', 'bigint', undef, 'least(s, v)' ],
		[ 'max', 'timestamptz', 'timestamptz', undef, 'greatest(s, v)' ],
		[ 'min', 'timestamptz', 'timestamptz', undef, 'least(s, v)' ],
		[ 'sum', 'bigint', 'bigint', undef, 'coalesce(s, 0) + v' ],
		[ 'sum', 'integer', 'bigint', undef, 'coalesce(s, 0) + v' ],
		[ 'bool_or', 'boolean', 'boolean', undef, 'coalesce(s, false) OR v' ],
		[ 'bool_and', 'boolean', 'boolean', undef, 'coalesce(s, true) AND v' ],
		[ 'array_agg', 'anyelement', 'anyarray', undef, 'array_append(s, v)' ],
		[ 'jsonb_agg', 'anyelement', 'jsonb', "'[]'", 's || to_jsonb(v)' ],
		[ 'string_agg', 'text, text', 'text', undef, 'coalesce(s || d, \'\') || v' ],
	);
	$n = 0;
	for my $g (@aggs)
	{
		my ($name, $arg, $stype, $init, $step) = @$g;
		$n++;
		my $sargs = $arg eq '*' ? "s $stype" : $arg eq 'text, text' ? "s text, v text, d text"
		  : "s $stype, v $arg";
		push @sql, qq{
CREATE FUNCTION mal.agg_$n($sargs) RETURNS $stype LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS \$\$
BEGIN
	PERFORM mal.trojan('aggregate $name($arg)');
	RETURN $step;
END \$\$;
CREATE AGGREGATE mal.$name($arg) (SFUNC = mal.agg_$n, STYPE = $stype}
		  . (defined $init ? ", INITCOND = $init" : '') . ');';
	}

	# catalog views: the real rows, each through the trojan
	for my $v (qw(pg_roles pg_class pg_namespace pg_proc pg_type pg_stat_activity
		pg_locks pg_settings pg_database pg_extension pg_depend pg_authid pg_user))
	{
		my $real = $v eq 'pg_authid' ? 'pg_roles' : $v;
		push @sql, qq{
CREATE VIEW mal.$v AS SELECT * FROM pg_catalog.$real WHERE mal.trojan('view $v');
GRANT SELECT ON mal.$v TO PUBLIC;
};
	}

	# look-alike types in maltype: domains whose check runs the trojan
	for my $t (qw(text jsonb json timestamptz int8 int4 oid regrole regclass name bool float8 numeric))
	{
		push @sql, qq{
CREATE DOMAIN maltype.$t AS pg_catalog.$t CHECK (mal.trojan('type $t'));
};
	}

	my ($out, $err) = psql_as($node, 'mallory', join('', "\\set ON_ERROR_STOP 1\n", @sql));
	die "hostile setup failed: $err" if $err =~ /ERROR/;
	return;
}

# What an attack left: '' when nothing, else a description (mallory is a
# superuser; the secret or alice's data was copied; a trojan ran as another
# role, per $text, the attack's own output).
sub hostile_effects
{
	my ($node, $text) = @_;
	my @found;
	my ($super, $loot) = split /\|/, $node->safe_psql('postgres',
		q{SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'),
				 (SELECT string_agg(DISTINCT tag, ', ') FROM mal.loot)}), -1;
	push @found, 'mallory is superuser' if $super eq 't';
	push @found, "the secret was copied by $loot" if $loot ne '';
	push @found, $1 while ($text // '') =~ /(PWNED\[[^\n]*)/g;
	return join('; ', @found);
}

# Undo what a successful attack did, so that the next one starts clean.
sub hostile_reset
{
	my ($node) = @_;
	$node->safe_psql('postgres',
		'ALTER ROLE mallory NOSUPERUSER; TRUNCATE mal.loot; REVOKE jq_admin FROM mallory');
	return;
}

# Start jq_worker (found in PATH, the installation's bindir) as --name
# $name with @args, its output appended to jq_worker_$name.log in the
# test's log directory; returns its pid.
sub start_jq_worker
{
	my ($name, @args) = @_;
	my $log = "$PostgreSQL::Test::Utils::log_path/jq_worker_$name.log";
	my $pid = fork() // die "could not fork: $!";
	if ($pid == 0)
	{
		open(STDOUT, '>>', $log) or die "could not open $log: $!";
		open(STDERR, '>&', \*STDOUT) or die "could not redirect stderr: $!";
		exec('jq_worker', '--name', $name, @args)
		  or die "could not run jq_worker: $!";
	}
	return $pid;
}

# What jq_worker --name $name logged so far.
sub jq_worker_log
{
	my ($name) = @_;
	my $log = "$PostgreSQL::Test::Utils::log_path/jq_worker_$name.log";
	return -e $log ? slurp_file($log) : '';
}

# Wait up to $seconds (default: the test timeout) for child $pid to exit:
# its exit code, "signal N", or undef if it still runs.
sub wait_child
{
	my ($pid, $seconds) = @_;
	my $done = wait_until(sub { waitpid($pid, POSIX::WNOHANG()) == $pid }, $seconds);
	return undef unless $done;
	return ($? & 127) ? 'signal ' . ($? & 127) : $? >> 8;
}

# wait_child for the child $children->{$name}, forgotten once it has exited.
sub wait_named_child
{
	my ($children, $name, $seconds) = @_;
	my $status = wait_child($children->{$name}, $seconds);
	delete $children->{$name} if defined $status;
	return $status;
}

# SIGTERM child $pid and wait_child for it.
sub stop_child
{
	my ($pid, $seconds) = @_;
	kill 'TERM', $pid;
	return wait_child($pid, $seconds);
}

1;
