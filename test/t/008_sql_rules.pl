# The rules that keep users' objects out of job_queue's own SQL, checked on
# the sources and on an installed extension, so that no change can drift
# from them: only src/internal_sql.c (and src/job_run.c, which runs the
# jobs themselves) hands SQL to SPI; the SQL strings of the C code call
# functions by schema-qualified names; every SQL function of the extension
# pins search_path, none is SECURITY DEFINER, and PUBLIC has no rights on
# schema jq; the workers' sessions keep their own settings whatever a
# database owner sets for the database.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my $spi_run = qr/\bSPI_(?:execute\w*|exec|execp|prepare\w*|cursor_open\w*)\s*\(/;
my %spi_allowed = ('src/internal_sql.c' => 1, 'src/job_run.c' => 1);

# SQL keywords that may be followed by a parenthesis
my %keyword = map { $_ => 1 }
  qw(ALL AND ANY ARRAY AS CAST COALESCE EXISTS EXTRACT FILTER FROM GREATEST IN
  JOIN LATERAL LEAST NOT NULLIF ON OPERATOR OR OVER ROWS USING VALUES WHERE);

my @sources = glob('src/*.c');
ok(@sources > 10, 'the C sources are found');
for my $file (@sources)
{
	my $code = slurp_file($file);
	$code =~ s{/\*.*?\*/}{}gs;

	ok($spi_allowed{$file} || $code !~ $spi_run,
		"$file runs no SQL but through internal_sql.c");

	# each run of adjacent string literals that reads as a statement
	my @unqualified;
	while ($code =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g)
	{
		my $sql = join('', $1 =~ /"((?:[^"\\\n]|\\.)*)"/g);
		next unless $sql =~ /^\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b/i;
		while ($sql =~ /(\bAS\s+)?(?<![\w.\$%])([A-Za-z_]\w*)\s*\(/gi)
		{
			next if defined $1 || $keyword{ uc $2 };
			push @unqualified, "$2(";
		}
	}
	is("@unqualified", '', "$file calls functions by qualified names in its SQL");
}

my $node = job_queue_node('rules');
$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');

my $unpinned = $node->safe_psql(
	'postgres', q{
	SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid)
	FROM pg_catalog.pg_depend d
	JOIN pg_catalog.pg_proc p ON p.oid = d.objid
	JOIN pg_catalog.pg_language l ON l.oid = p.prolang
	WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
	  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	  AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'job_queue')
	  AND l.lanname <> 'c'
	  AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)});
is($unpinned, '', 'every SQL function of the extension pins search_path');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*)
	FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid
	WHERE d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'job_queue')
	  AND d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.prosecdef}),
	'0',
	'no function of the extension is SECURITY DEFINER');

is( $node->safe_psql(
		'postgres', q{
	SELECT pg_catalog.has_schema_privilege('public', 'jq', 'USAGE')
	    OR pg_catalog.has_schema_privilege('public', 'jq', 'CREATE')}),
	'f',
	'PUBLIC cannot use or create in schema jq');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_catalog.pg_proc p
	WHERE p.pronamespace = 'jq'::pg_catalog.regnamespace
	  AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')}),
	'0',
	'PUBLIC may execute no function of schema jq');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_catalog.pg_class c
	WHERE c.relnamespace = 'jq'::pg_catalog.regnamespace
	  AND pg_catalog.has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE')}),
	'0',
	'PUBLIC has no rights on the tables and views of schema jq');

# A database owner's ALTER DATABASE ... SET reaches the jobs, not the
# workers' own sessions: the workers keep their role, search_path and
# timeouts whatever it says.
$node->safe_psql(
	'postgres', q{
	CREATE ROLE dbowner LOGIN;
	CREATE DATABASE owned OWNER dbowner;
});
$node->safe_psql('owned', 'CREATE EXTENSION job_queue');
$node->safe_psql(
	'owned', q{
	CREATE SCHEMA lookalike AUTHORIZATION dbowner;
	ALTER DATABASE owned SET search_path = lookalike, public;
	ALTER DATABASE owned SET session_authorization = 'dbowner';
	ALTER DATABASE owned SET role = 'dbowner';
	ALTER DATABASE owned SET statement_timeout = '10ms';
	ALTER DATABASE owned SET default_transaction_read_only = on;
}, connstr => $node->connstr('owned') . ' user=dbowner');
$node->restart;
# the test's own sessions override what it can
local $ENV{PGOPTIONS} = '-c statement_timeout=0 -c default_transaction_read_only=off';
my $id = $node->safe_psql('owned',
	q{SELECT jq_enqueue($$SELECT current_setting('search_path') AS path, pg_sleep(0.2)$$)});
ok(wait_for_job_state($node, 'owned', $id, 'succeeded'),
	'workers run jobs whatever the database owner set for the database');
is( $node->safe_psql('owned', "SELECT result->0->>'path' FROM jq_jobs WHERE id = $id"),
	'lookalike, public',
	'the job gets the search_path of the database');

$node->stop;
done_testing();
