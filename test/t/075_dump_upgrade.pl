# A database with jobs in every state, a schedule, a configured queue and a
# group keeps them all through pg_dump/pg_restore and through pg_upgrade,
# and work goes on from where it was: new ids follow the old ones,
# dependants wait for their dependencies, ready jobs are claimed.  Logical
# replication of the queue is refused: no publication may hold the tables
# of schema jq (a subscriber would run the jobs a second time).
#
# Nothing runs in the server (jq.execute_in_server = off), so that the
# states compared are the ones the database was dumped or upgraded with.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $conf = "jq.execute_in_server = off\n";
my $old = job_queue_node('old', conf => $conf);
$old->safe_psql('postgres', q{
CREATE ROLE app LOGIN IN ROLE pg_execute_server_program;
CREATE DATABASE shop OWNER app;
});
$old->safe_psql('shop', q{
CREATE EXTENSION job_queue;
SELECT jq_configure_queue('video', external_only => true, default_priority => 3);
SET ROLE app;
SELECT jq_enqueue('SELECT 1', queue => 'mail', payload => '{"to": "a@example.com"}');
SELECT jq_enqueue('SELECT 2', run_at => now() + interval '1 day');
SELECT jq_enqueue('SELECT 3', unique_key => 'once');
SELECT jq_enqueue('SELECT 4', depends_on => ARRAY[jq_enqueue('SELECT 5', queue => 'first')]);
SELECT jq_enqueue_shell(argv => ARRAY['convert', 'a.png'], queue => 'video');
SELECT count(*) FROM jq_enqueue_group('[{"name": "x", "command": "SELECT 6"},
										{"name": "y", "command": "SELECT 7", "depends_on": ["x"]}]',
									  'pair');
SELECT jq_schedule('nightly', '0 3 * * *', 'SELECT 8', queue => 'maintenance');
SELECT jq_enqueue('SELECT 9', queue => 'done');
SELECT jq_enqueue('SELECT 10', queue => 'done', max_attempts => 1);
SELECT jq_enqueue('SELECT 12', queue => 'held');
});
# two jobs finish (history), one through a retry
$old->safe_psql('shop', q{
SET ROLE app;
SELECT jq_complete(d.id, '{"ok": 1}', attempt => d.attempt)
FROM jq_dequeue('done', 1) d;
SELECT jq_fail(d.id, 'broken', attempt => d.attempt)
FROM jq_dequeue('done', 1) d;
SELECT count(*) FROM jq_dequeue('held', 1, lease => '1 hour', worker => 'worker-1');
});

# what must survive, as a superuser sees it
my $snapshot = q{
SELECT string_agg(format('%s %s %s %s %s %s %s %s %s %s %s %s %s', id, queue, kind, command,
						 argv, state, priority, attempts, owner, unique_key, lease_owner, result,
						 last_error),
				  E'\n' ORDER BY id) FROM jq_jobs;
SELECT string_agg(format('%s %s %s %s %s', name, schedule, command, owner, next_run), E'\n')
FROM jq_schedules;
SELECT string_agg(format('%s %s %s', queue, external_only, default_priority), E'\n' ORDER BY queue)
FROM jq_queues;
SELECT string_agg(format('%s %s %s %s', name, owner, total, state), E'\n') FROM jq_groups;
};
my $before = $old->safe_psql('shop', $snapshot);
like($before, qr/^(?=.* scheduled )(?=.* waiting )(?=.* ready )(?=.* running )(?=.* succeeded )(?=.* failed )/s,
	'jobs in every state to keep');
like($before, qr/nightly 0 3 \* \* \* SELECT 8 app/, 'a schedule to keep');

# work goes on in a database made from the original: ids go on, the
# dependency holds, ready jobs are claimed
sub carries_on
{
	my ($node, $db, $what) = @_;
	is($node->safe_psql($db, $snapshot), $before, "$what: every job, schedule, queue and group");
	is($node->safe_psql($db, q{SET ROLE app;
		SELECT jq_enqueue('SELECT 11') > max(id) FROM jq_jobs}), 't',
		"$what: a new job's id follows the old ones");
	is($node->safe_psql($db, q{SET ROLE app;
		SELECT jq_complete(d.id, attempt => d.attempt) FROM jq_dequeue('first', 1) d;
		SELECT state FROM jq_jobs WHERE command = 'SELECT 4'}), "t\nready",
		"$what: finishing a dependency releases its dependant");
	is($node->safe_psql($db, q{SET ROLE app;
		SELECT string_agg(command, ',' ORDER BY id) FROM jq_dequeue('mail', 10)}),
		'SELECT 1', "$what: a ready job is claimed");
	is($node->safe_psql($db, q{SET ROLE app; SELECT jq_enqueue('SELECT 3', unique_key => 'once')
		= (SELECT id FROM jq_jobs WHERE command = 'SELECT 3')}), 't',
		"$what: a unique key still finds its job");
}

# pg_dump and pg_restore into a new database
my $dump = PostgreSQL::Test::Utils::tempdir . '/shop.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $old->connstr('shop') ], 'pg_dump');
$old->safe_psql('postgres', 'CREATE DATABASE restored OWNER app');
# The partitions of jq.job_history that the scheduler made are dumped as
# tables of their own, and their primary key and indexes with them, which
# they already have once attached to the extension's table: the only errors
# of the restore, as the README says.
my (undef, $restore_err) =
  run_command([ 'pg_restore', '-d', $old->connstr('restored'), $dump ]);
is( join("\n",
		grep {
			/error:/
			  && !/multiple primary keys for table "job_history_p\d+_\d+"/
			  && !/relation "job_history_p\d+_\d+_\w+" already exists/
		} split /\n/, $restore_err),
	'',
	'pg_restore: no error but the indexes of history partitions');
carries_on($old, 'restored', 'restored');

# pg_upgrade to a new cluster of the same version (the binaries at hand)
my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf',
	"shared_preload_libraries = 'job_queue'\nmax_worker_processes = 32\n$conf");
$old->stop;
my $bindir = $old->config_data('--bindir');
my $workdir = PostgreSQL::Test::Utils::tempdir;
chdir $workdir or die "could not enter $workdir: $!";
$new->command_ok(
	[
		'pg_upgrade', '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host, '-p', $old->port, '-P', $new->port
	],
	'pg_upgrade');
$new->start;
carries_on($new, 'shop', 'upgraded');

# logical replication: no publication may take the queue's tables
$new->safe_psql('shop', q{CREATE TABLE orders (id int PRIMARY KEY);
	GRANT CREATE ON DATABASE shop TO app});
my ($ret, $out, $err) = $new->psql('shop', 'CREATE PUBLICATION everything FOR ALL TABLES');
like($err, qr/publication "everything" would replicate the tables of job_queue/,
	'a publication FOR ALL TABLES is refused');
($ret, $out, $err) = $new->psql('shop', 'CREATE PUBLICATION jobs FOR TABLE jq.job');
like($err, qr/would replicate the tables of job_queue/, 'so is one with jq.job');
($ret, $out, $err) = $new->psql('shop', 'CREATE PUBLICATION jobs FOR TABLES IN SCHEMA jq');
like($err, qr/would replicate the tables of job_queue/, 'and one with schema jq');
$new->safe_psql('shop', 'ALTER TABLE orders OWNER TO app');
is($new->psql('shop', 'SET ROLE app; CREATE PUBLICATION app_data FOR TABLE orders'), 0,
	'a role without rights on jq publishes its own tables');
($ret, $out, $err) = $new->psql('shop', 'ALTER PUBLICATION app_data ADD TABLE jq.job_history');
like($err, qr/would replicate the tables of job_queue/, 'adding a table of jq is refused');
is($new->safe_psql('shop', q{SELECT string_agg(schemaname || '.' || tablename, ',')
	FROM pg_publication_tables}), 'public.orders', 'only the application table is published');
$new->safe_psql('postgres', 'CREATE DATABASE published');
$new->safe_psql('published', 'CREATE PUBLICATION everything FOR ALL TABLES');
($ret, $out, $err) = $new->psql('published', 'CREATE EXTENSION job_queue');
like($err, qr/publication "everything" would replicate the tables of job_queue/,
	'the extension is not created under a publication FOR ALL TABLES');

done_testing();
