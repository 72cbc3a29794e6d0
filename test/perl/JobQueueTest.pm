# Shared setup of the job_queue TAP tests.
package JobQueueTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(job_queue_node);

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

1;
