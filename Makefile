# job_queue: PGXS build
EXTENSION = job_queue
MODULE_big = job_queue
OBJS = \
	src/api.o \
	src/bgworker.o \
	src/claim_trace.o \
	src/compat.o \
	src/cron.o \
	src/dequeue.o \
	src/enqueue.o \
	src/executor.o \
	src/guc.o \
	src/internal_sql.o \
	src/job_queue.o \
	src/job_run.o \
	src/queue_settings.o \
	src/run_sql.o \
	src/launcher.o \
	src/monitor.o \
	src/outcome.o \
	src/pool.o \
	src/progress.o \
	src/scheduler.o \
	src/shell_job.o \
	src/shell_run.o \
	src/shmem.o \
	src/slots.o \
	src/stats.o \
	src/stats_report.o \
	src/transition.o \
	src/utility.o \
	src/wait.o \
	src/wakeup.o

# the install script is built from the parts in sql/install, in name order;
# upgrade scripts are kept whole in sql/
DATA_built = sql/$(EXTENSION)--1.0.sql
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql)
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))

# pg_regress tests: sql/NAME.sql, its expected output expected/NAME.out
TESTS = $(sort $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))
REGRESS = $(patsubst sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --outputdir=test/out \
	--temp-instance=test/tmp_regress --temp-config=test/job_queue.conf

# isolation tests: test/specs/NAME.spec, its expected output test/expected/NAME.out
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --outputdir=test/out_isolation \
	--temp-instance=test/tmp_isolation --temp-config=test/job_queue_external.conf

TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
EXTRA_CLEAN = test/out test/out_isolation test/tmp_regress test/tmp_isolation tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--1.0.sql: $(INSTALL_PARTS)
	cat $^ > $@

# each object depends on the headers it includes, directly or not
src/api.o: src/api.h src/compat.h src/internal_sql.h src/job_queue.h
src/bgworker.o: src/bgworker.h src/job_queue.h
src/claim_trace.o: src/claim_trace.h src/internal_sql.h src/job_queue.h src/job_run.h src/shmem.h
src/compat.o: src/compat.h
src/dequeue.o: src/api.h src/compat.h src/executor.h src/internal_sql.h src/job_queue.h src/shmem.h src/wakeup.h
src/enqueue.o: src/api.h src/guc.h src/internal_sql.h src/job_queue.h src/queue_settings.h src/wakeup.h
src/executor.o: src/claim_trace.h src/executor.h src/guc.h src/internal_sql.h src/job_queue.h src/job_run.h src/outcome.h src/protocol.h src/shell_job.h src/shmem.h src/wakeup.h
src/guc.o: src/compat.h src/guc.h src/internal_sql.h
src/internal_sql.o: src/compat.h src/internal_sql.h
src/job_queue.o: src/guc.h src/job_queue.h src/launcher.h src/monitor.h src/shmem.h src/utility.h src/wakeup.h
src/job_run.o: src/compat.h src/guc.h src/job_queue.h src/job_run.h src/shmem.h src/wakeup.h
src/queue_settings.o: src/compat.h src/internal_sql.h src/queue_settings.h
src/run_sql.o: src/api.h src/compat.h src/executor.h src/internal_sql.h src/job_queue.h src/job_run.h src/outcome.h src/shmem.h
src/launcher.o: src/bgworker.h src/job_queue.h src/launcher.h src/pool.h src/shmem.h src/wakeup.h
src/monitor.o: src/monitor.h
src/outcome.o: src/internal_sql.h src/job_queue.h src/job_run.h src/outcome.h src/shmem.h src/wakeup.h
src/pool.o: src/api.h src/guc.h src/job_queue.h src/pool.h src/shmem.h
src/progress.o: src/api.h src/compat.h src/internal_sql.h src/job_queue.h src/monitor.h src/shmem.h
src/scheduler.o: src/bgworker.h src/claim_trace.h src/executor.h src/guc.h src/internal_sql.h src/job_queue.h src/job_run.h src/monitor.h src/pool.h src/scheduler.h src/shell_job.h src/shmem.h
src/shell_job.o: src/api.h src/compat.h src/guc.h src/job_queue.h src/job_run.h src/protocol.h src/shell_job.h src/shell_run.h src/shmem.h
src/shell_run.o: src/shell_run.h
src/shmem.o: src/compat.h src/guc.h src/job_queue.h src/monitor.h src/pool.h src/shmem.h
src/slots.o: src/guc.h src/job_queue.h src/shmem.h
src/stats.o: src/internal_sql.h src/monitor.h
src/stats_report.o: src/api.h src/compat.h src/internal_sql.h src/monitor.h
src/utility.o: src/claim_trace.h src/compat.h src/job_queue.h src/job_run.h src/protocol.h src/shmem.h src/utility.h src/wakeup.h
src/wait.o: src/api.h src/internal_sql.h src/job_queue.h src/monitor.h src/shmem.h
src/wakeup.o: src/api.h src/guc.h src/job_queue.h src/protocol.h src/shmem.h src/wakeup.h

# the TAP tests' shared module
PG_PROVE_FLAGS += -I $(srcdir)/test/perl

.PHONY: demo bench
# set up a throwaway cluster, run a few jobs, and leave it running
demo:
	test/demo.sh

# figures for the README's performance table: the server, jq_worker,
# monitoring, then the Python and Node.js workers next to their peers
bench:
	test/bench/bench.sh
	test/bench/worker.sh
	test/bench/monitor.sh
	test/bench/lang.sh

# the programs built and installed with the extension: jq_worker, the
# external worker, and jq_dashboard, the web dashboard; goal dir-target runs
# make target in dir
PROGRAM_DIRS = worker dashboard
PROGRAM_TARGETS = all install uninstall clean
PROGRAM_GOALS = $(foreach t,$(PROGRAM_TARGETS),$(addsuffix -$(t),$(PROGRAM_DIRS)))
all: $(addsuffix -all,$(PROGRAM_DIRS))
install: $(addsuffix -install,$(PROGRAM_DIRS))
uninstall: $(addsuffix -uninstall,$(PROGRAM_DIRS))
clean: $(addsuffix -clean,$(PROGRAM_DIRS))
.PHONY: $(PROGRAM_GOALS)
$(PROGRAM_GOALS):
	$(MAKE) -C $(firstword $(subst -, ,$@)) $(lastword $(subst -, ,$@)) PG_CONFIG='$(PG_CONFIG)'
