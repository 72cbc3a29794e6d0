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
  kill_for_crash_restart start_jq_worker jq_worker_log wait_child);

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

1;
