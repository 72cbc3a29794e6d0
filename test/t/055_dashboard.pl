# jq_dashboard, the web dashboard, against a real server:
#
#  1. basic auth: no credentials and a wrong password are refused (401), and
#     so is a Host header that is not a loopback name (DNS rebinding);
#  2. it acts with the rights of the role it connects as: a role that is
#     not jq_admin sees only its own jobs, and cannot retry another's; the
#     role's search_path does not change what it reads;
#  3. a POST without the page's CSRF token, or from another origin, is
#     refused and changes nothing; with it, cancel works;
#  4. /metrics serves SELECT jq_metrics(), valid Prometheus text;
#  5. however many pages poll, the database sees at most one snapshot
#     query per refresh period, and none while no page polls;
#  6. in headless chromium: the page shows a queue and a running job's
#     progress; Retry on a failed job runs it again and the page shows it
#     succeeded; the job's detail lists the error of its first attempt;
#     screenshots are saved in the test's log directory;
#  7. it survives a restart of the server;
#  8. SIGTERM stops it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobQueueTest;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

# every wait here is for something due within seconds: give up early
$PostgreSQL::Test::Utils::timeout_default = 120
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $node = job_queue_node('dashboard');
$node->safe_psql('postgres', q{
CREATE EXTENSION job_queue;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE TABLE alice_flag (x int);
ALTER TABLE alice_flag OWNER TO alice;
GRANT USAGE, CREATE ON SCHEMA public TO alice;
-- the dashboard's statements, for the refresh count (5)
ALTER ROLE alice SET log_statement = 'all';
-- look-alikes first in alice's search_path, which the dashboard must not read
CREATE SCHEMA shadow AUTHORIZATION alice;
CREATE TABLE shadow.jq_jobs (nothing int);
CREATE TABLE shadow.jq_queues (nothing int);
ALTER ROLE alice SET search_path = shadow, public;
});

sub as_role
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE $role; $sql");
}

# alice's jobs: one that reports progress and runs long, one that fails
# until alice_flag has a row; bob's: one that fails
# the long job first, alone: jobs claimed in the same batch would wait for it
my $running = as_role('alice',
	q{SELECT jq_enqueue($$SELECT jq_progress(0.42, 'halfway there'); SELECT pg_sleep(600)$$,
	                    queue => 'reports')});
wait_for_job_state($node, 'postgres', $running, 'running')
  or die 'the long job did not start';
my $failing = as_role('alice',
	q{SELECT jq_enqueue('SELECT 1 / (SELECT count(*)::int FROM alice_flag)', queue => 'mail',
	                    max_attempts => 1, payload => '{"to": "ada@example.com"}')});
my $bobs = as_role('bob',
	q{SELECT jq_enqueue('SELECT 1 / 0', queue => 'bobs_queue', max_attempts => 1)});
as_role('bob', q{SELECT jq_enqueue('SELECT 1', queue => 'bobs_later', run_at => now() + interval '1 day')});
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM jq_jobs WHERE id IN ($failing, $bobs) AND state = 'failed'")
  or die 'the failing jobs did not fail';

# start jq_dashboard (found in PATH, the installation's bindir) as alice
my $log = "$PostgreSQL::Test::Utils::log_path/jq_dashboard.log";
my $password_file = PostgreSQL::Test::Utils::tempdir . '/password';
PostgreSQL::Test::Utils::append_to_file($password_file, "s3cret pass\n");
my $dsn = $node->connstr('postgres') . ' user=alice';
my $pid = fork() // die "could not fork: $!";
if ($pid == 0)
{
	open(STDOUT, '>>', $log) or die "could not open $log: $!";
	open(STDERR, '>&', \*STDOUT) or die "could not redirect stderr: $!";
	exec('jq_dashboard', '--dsn', $dsn, '--port', '0', '--user', 'ops',
		'--password-file', $password_file)
	  or die "could not run jq_dashboard: $!";
}
END { kill 'KILL', $pid if $pid; }

my $port;
wait_until(sub { ($port) = (-e $log ? slurp_file($log) : '') =~ m{listening on http://127\.0\.0\.1:(\d+)/}; $port })
  or die 'jq_dashboard did not start: ' . slurp_file($log);
my $base = "http://127.0.0.1:$port";
my $auth = 'Basic ' . encode_base64('ops:s3cret pass', '');
my $http = HTTP::Tiny->new(timeout => 60);

sub get
{
	my ($path, %headers) = @_;
	return $http->get("$base$path",
		{ headers => { Authorization => $auth, %headers } });
}

sub post
{
	my ($path, %headers) = @_;
	return $http->post("$base$path",
		{ headers => { Authorization => $auth, %headers } });
}

# 1. basic auth and the Host header
my $r = $http->get("$base/");
is($r->{status}, 401, 'no credentials: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Basic realm=/, 'asks for basic auth');
$r = $http->get("$base/metrics",
	{ headers => { Authorization => 'Basic ' . encode_base64('ops:wrong', '') } });
is($r->{status}, 401, 'a wrong password: 401');
# HTTP::Tiny sets Host itself: this request is written by hand
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
  or die "could not connect: $!";
print $sock "GET / HTTP/1.1\r\nHost: evil.example:$port\r\nAuthorization: $auth\r\n"
  . "Connection: close\r\n\r\n";
like(scalar(<$sock>), qr{^HTTP/1\.1 403 }, 'a Host header that is not a loopback name: 403');
close($sock);
$r = get('/');
is($r->{status}, 200, 'the right password: the page');
my ($token) = $r->{content} =~ /<meta name="csrf-token" content="([0-9a-f]+)">/;
ok(defined $token && length($token) == 48, 'the page carries a CSRF token');
like($r->{headers}{'content-security-policy'}, qr/default-src 'self'/, 'scripts only from the dashboard');
is($r->{headers}{'x-frame-options'}, 'DENY', 'the page cannot be framed');
for my $asset ('/app.js', '/app.css')
{
	is(get($asset)->{status}, 200, "$asset is served");
}
like(get('/index.html')->{content}, qr/content="$token"/, '/index.html is the page, with the token');
is(get('/nothing')->{status}, 404, 'an unknown path: 404');

# 2. alice's rights
$r = get('/api/snapshot');
is($r->{status}, 200, 'snapshot');
my $snapshot = decode_json($r->{content})->{snapshot};
is($snapshot->{role}, 'alice', 'connected as alice, through the look-alikes in her search_path');
is_deeply([ sort map { $_->{queue} } @{ $snapshot->{queues} } ], [ 'mail', 'reports' ],
	"alice sees her queues, not bob's");
is_deeply([ map { $_->{id} } @{ $snapshot->{failed} } ], [$failing],
	"alice sees her failed job, not bob's");
is_deeply([ map { $_->{id} } @{ $snapshot->{running} } ], [$running], 'and her running job');
is(get("/api/job?id=$bobs")->{status}, 404, "bob's job has no detail for alice");
$r = get("/api/job?id=$failing");
is($r->{status}, 200, "alice's job has");
my $detail = decode_json($r->{content});
is_deeply([ $detail->{job}{command}, $detail->{job}{payload}, $detail->{job}{state},
		$detail->{job}{errors}[0]{message} ],
	[ 'SELECT 1 / (SELECT count(*)::int FROM alice_flag)', { to => 'ada@example.com' }, 'failed',
		'division by zero' ],
	'the detail: command, payload, state, errors');
my %group = split /[|\n]/, as_role('alice', q{SELECT name, id FROM jq_enqueue_group('[
	{"name": "first", "command": "SELECT 1", "queue": "mail"},
	{"name": "second", "command": "SELECT 2", "queue": "mail", "depends_on": ["first"]}]',
	name => 'pair')});
$detail = decode_json(get("/api/job?id=$group{second}")->{content});
is_deeply([ map { $_->{id} } @{ $detail->{dependencies} } ], [ $group{first} ], 'its dependencies');
is($detail->{group}{name}, 'pair', 'its group');
is_deeply([ map { $_->{id} } @{ $detail->{group_jobs} } ], [ sort { $a <=> $b } values %group ],
	"and the group's jobs");
is(get('/api/job?id=1;drop')->{status}, 400, 'a job id must be digits');
$r = post("/api/retry?id=$bobs", 'X-CSRF-Token' => $token);
is($r->{status}, 404, "alice cannot retry bob's job: for her it does not exist");
like($r->{content}, qr/job $bobs does not exist/, "with jq_retry's message");
is($node->safe_psql('postgres', "SELECT state FROM jq_jobs WHERE id = $bobs"),
	'failed', "bob's job is still failed");

# 3. CSRF: without the token, or from another origin, nothing happens
is(post("/api/cancel?id=$running")->{status}, 403, 'a POST without the token: 403');
is(post("/api/cancel?id=$running", 'X-CSRF-Token' => 'f' x 48)->{status},
	403, 'with a wrong token: 403');
is(post("/api/cancel?id=$running", 'X-CSRF-Token' => $token,
		Origin => 'http://evil.example')->{status},
	403, 'from another origin: 403');
is($node->safe_psql('postgres', "SELECT state FROM jq_jobs WHERE id = $running"),
	'running', 'the job still runs');

# 4. /metrics
$r = get('/metrics');
is($r->{status}, 200, '/metrics');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in Prometheus text format');
my $name = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $labels = qr/\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\}/;
my $value = qr/(?:[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)/;
my @bad = grep {
	!/^# HELP $name .*$/
	  && !/^# TYPE $name (?:counter|gauge|histogram|summary|untyped)$/
	  && !/^#(?! (?:HELP|TYPE) )/
	  && !/^$name$labels? $value(?: -?\d+)?$/
} grep { length } split /\n/, $r->{content};
is_deeply(\@bad, [], 'every line is a comment or a sample');
like($r->{content}, qr/^# TYPE jq_\w+ (?:counter|gauge|histogram)$/m, 'with typed jq_ metrics');
like($r->{content}, qr/^jq_jobs\{database="postgres",queue="reports",state="running"\} 1$/m,
	'counting the running job');
my %families = $r->{content} =~ /^# TYPE (\w+) (\w+)$/mg;
my @unknown = grep {
	!$families{$_}
	  && !(/^(\w+)_(?:bucket|sum|count)$/ && ($families{$1} // '') eq 'histogram')
} grafana_metrics();
is_deeply(\@unknown, [], 'every metric of the Grafana dashboard is served');

# the metric names in the expressions of the Grafana dashboard
sub grafana_metrics
{
	my $dashboard = decode_json(slurp_file('dashboard/grafana.json'));
	my %names;
	for my $panel (@{ $dashboard->{panels} })
	{
		$names{$_} = 1 for map { $_->{expr} =~ /\b(jq_\w+)\{/g } @{ $panel->{targets} };
	}
	return sort keys %names;
}
my @grafana_metrics = grafana_metrics();
cmp_ok(scalar(@grafana_metrics), '>=', 5, 'the Grafana dashboard reads the metrics');

# 5. one snapshot query per refresh period, whatever the number of pages:
# five pages polling ten times a second each for two seconds
my $offset = -s $node->logfile;
my $t0 = time;
for my $i (1 .. 100)
{
	get('/api/snapshot?since=' . ($i % 5)) ->{status} == 200 or fail("poll $i");
	sleep 0.02;
}
my $elapsed = time - $t0;
my $queries = () = slurp_file($node->logfile, $offset) =~ m{/\* jq_dashboard snapshot \*/}g;
cmp_ok($queries, '>=', 1, 'the polls were answered from the database');
cmp_ok($queries, '<=', int($elapsed) + 1,
	"$queries snapshot queries for 100 polls in ${elapsed}s: at most one a second");
# and none while nobody polls
$offset = -s $node->logfile;
sleep 2.5;
$node->safe_psql('postgres', 'SELECT 1');
unlike(slurp_file($node->logfile, $offset), qr{jq_dashboard snapshot}, 'no query while no page polls');

# 6. the page in headless chromium; the failed job succeeds when run again,
# now that alice_flag has a row
$node->safe_psql('postgres', 'INSERT INTO alice_flag VALUES (1)');
my $out = $PostgreSQL::Test::Utils::log_path;
my $browser = `DASH_URL='$base/' DASH_USER=ops DASH_PASSWORD='s3cret pass' DASH_QUEUE=reports \\
	DASH_RUNNING_ID=$running DASH_PROGRESS='halfway there' \\
	DASH_FAILED_ID=$failing DASH_OUTPUT='$out' node test/browser/dashboard.mjs 2>&1`;
my $browser_status = $?;
for my $line (split /\n/, $browser)
{
	if ($line =~ /^ok (.*)/)
	{
		pass("browser: $1");
	}
	elsif ($line =~ /^not ok (.*)/)
	{
		fail("browser: $1");
	}
	else
	{
		note("browser: $line");
	}
}
is($browser_status, 0, 'the browser script passed');
ok(-s "$out/dashboard.png" && -s "$out/dashboard_job.png", "screenshots saved in $out");
is($node->safe_psql('postgres',
		"SELECT state || ' ' || attempts || ' ' || jsonb_array_length(errors) FROM jq_jobs WHERE id = $failing"),
	'succeeded 1 1', 'the retried job succeeded, its first error kept');

# 3 again: with the token, cancel works
$r = post("/api/cancel?id=$running", 'X-CSRF-Token' => $token, Origin => $base);
is($r->{status}, 200, 'cancel with the token');
wait_for_job_state($node, 'postgres', $running, 'cancelled')
  or fail('the running job was not cancelled');

# 7. the server restarts: the page is told the database cannot be reached,
# then the dashboard connects again
$node->stop('fast');
sleep 1.1;    # past the refresh period of the cached snapshot
$r = get('/api/snapshot');
is($r->{status}, 503, 'the server down: 503');
ok(exists decode_json($r->{content})->{error}, 'with the error');
$node->start;
ok(wait_until(sub { get('/api/snapshot')->{status} == 200 }), 'the server back: the snapshot again');

# 8. SIGTERM
kill 'TERM', $pid;
my $deadline = time + 30;
my $exited;
until (($exited = waitpid($pid, WNOHANG)) == $pid || time > $deadline)
{
	sleep 0.05;
}
is($exited, $pid, 'SIGTERM stops jq_dashboard');
is($?, 0, 'with exit status 0');
$pid = undef;

$node->stop;
done_testing();
