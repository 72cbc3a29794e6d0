# The Python worker (python/job_queue) against a real server: see
# test/perl/LangWorkerTest.pm for what is tested.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;
use LangWorkerTest;

$PostgreSQL::Test::Utils::timeout_default = 60
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $root = abs_path(dirname(__FILE__) . '/../..');
# Debian's interpreter, which has python3-psycopg
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

run_lang_worker_tests(
	name => 'python',
	worker => [ $python, '-m', 'job_queue', 'worker', 'app_jobs' ],
	enqueue => [ $python, "$root/test/lang/enqueue.py" ],
	stack => qr/Traceback \(most recent call last\):.*app_jobs\.py", line \d+, in boom/s,
	env => { PYTHONPATH => "$root/python:$root/test/lang" });

done_testing();
