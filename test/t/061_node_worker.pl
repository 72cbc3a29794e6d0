# The Node.js worker (node/, after npm install there) against a real server:
# see test/perl/LangWorkerTest.pm for what is tested.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Utils;
use Test::More;
use LangWorkerTest;

$PostgreSQL::Test::Utils::timeout_default = 60
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $root = abs_path(dirname(__FILE__) . '/../..');
-d "$root/node/node_modules/pg"
  or BAIL_OUT('node/node_modules/pg is missing: run npm install in node/ (test/install_deps.sh does)');

# the package, as an application's require('job-queue') finds it
my $modules = PostgreSQL::Test::Utils::tempdir . '/node_modules';
mkdir $modules or die "could not create $modules: $!";
symlink("$root/node", "$modules/job-queue") or die "could not link the package: $!";

run_lang_worker_tests(
	name => 'node',
	worker => [ 'node', "$root/node/bin/job-queue.js", 'worker', "$root/test/lang/app_jobs.js" ],
	enqueue => [ 'node', "$root/test/lang/enqueue.js" ],
	stack => qr/RangeError: boom 7\n\s+at .*app_jobs\.js:\d+/,
	env => { NODE_PATH => "$modules:$root/node/node_modules" });

done_testing();
