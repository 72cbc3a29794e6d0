# The install script, as built and as installed: the installed
# job_queue--1.0.sql is the concatenation of sql/install/*.sql in name
# order, so that a stale build or install fails here; and a part that
# holds functions holds nothing else and creates them with CREATE OR
# REPLACE, so that an upgrade script can replay it whole: replaying every
# such part on an installed extension succeeds and changes no function.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;

my @parts = sort glob('sql/install/*.sql');
ok(@parts > 5, 'the parts of the install script are found');
my %text = map { $_ => slurp_file($_) } @parts;

my $node = job_queue_node('install_script', preload => '');
my $installed =
  slurp_file($node->config_data('--sharedir') . '/extension/job_queue--1.0.sql');
my $built = join('', map { $text{$_} } @parts);
my @installed_lines = split /\n/, $installed, -1;
my @built_lines = split /\n/, $built, -1;
my ($first_difference) =
  grep { ($installed_lines[$_] // "\0") ne ($built_lines[$_] // "\0") }
  0 .. ($#installed_lines > $#built_lines ? $#installed_lines : $#built_lines);
ok(!defined $first_difference,
	'the installed job_queue--1.0.sql is the concatenation of sql/install/*.sql')
  or diag('they differ from line ' . ($first_difference + 1)
	  . ': run make install');

# The statements of a part, without comments, function bodies and strings.
sub statements
{
	my ($sql) = @_;
	$sql =~ s/\$\$.*?\$\$/\$\$\$\$/gs;
	$sql =~ s{/\*.*?\*/}{}gs;
	$sql =~ s/--[^\n]*//g;
	$sql =~ s/'(?:[^']|'')*'/''/g;
	return grep { /\S/ } map { s/^\s+|\s+$//gr } split /;/, $sql;
}

my @function_parts;
for my $part (@parts)
{
	my @stmts = statements($text{$part});
	next unless grep { /^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\b/i } @stmts;
	push @function_parts, $part;
	my @others =
	  grep { !/^(?:CREATE\s+OR\s+REPLACE\s+FUNCTION|COMMENT\s+ON\s+FUNCTION)\b/i }
	  @stmts;
	is(join("\n", map { (split /\n/)[0] } @others),
		'',
		"$part holds only CREATE OR REPLACE FUNCTION and COMMENT ON FUNCTION");
}
ok(@function_parts > 5, 'most parts hold functions');

$node->safe_psql('postgres', 'CREATE EXTENSION job_queue');
my $functions = q{
	SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', p.oid::pg_catalog.regprocedure,
			pg_catalog.pg_get_functiondef(p.oid), p.proacl,
			pg_catalog.obj_description(p.oid, 'pg_proc')), E'\n' ORDER BY p.oid)
	FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid
	WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
	  AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'job_queue')};
my $before = $node->safe_psql('postgres', $functions);
for my $part (@function_parts)
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		$text{$part} =~ s/MODULE_PATHNAME/\$libdir\/job_queue/gr,
		on_error_stop => 1);
	is($ret, 0, "$part can be replayed on the installed extension")
	  or diag($stderr);
}
is($node->safe_psql('postgres', $functions), $before,
	'replaying the parts changes no function of the extension');

$node->stop;
done_testing();
