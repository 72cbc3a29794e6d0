/*-------------------------------------------------------------------------
 *
 * utility.c
 *	  ProcessUtility hook: keep job_queue workers out of the way of
 *	  commands on whole databases, tell them about DROP EXTENSION, stop
 *	  counting a session as a listener when it stops listening, and note
 *	  a job's SET CONSTRAINTS, which outlives the job (job_run.c).
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and CREATE
 * DATABASE ... TEMPLATE fail while other sessions are connected to the
 * database concerned.  Before running them, the hook stops that database's
 * scheduler and executors and keeps the launcher from restarting them;
 * afterwards it lets the launcher look at the database again (a dropped
 * one is forgotten when the launcher no longer finds it in pg_database).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/syscache.h"

#include "claim_trace.h"
#include "compat.h"
#include "job_queue.h"
#include "job_run.h"
#include "protocol.h"
#include "shmem.h"
#include "utility.h"
#include "wakeup.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/* The database a command needs to itself, or InvalidOid. */
static Oid
utility_database_needed(Node *parsetree)
{
	const char *name = NULL;
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			name = ((DropdbStmt *) parsetree)->dbname;
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				name = ((RenameStmt *) parsetree)->subname;
			break;
		case T_CreatedbStmt:
			name = "template1";
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst(lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					name = defGetString(opt);
			}
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst(lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					name = ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			break;
		default:
			break;
	}
	return name ? get_database_oid(name, true) : InvalidOid;
}

/*
 * Whether the current user may run the command on that database at all:
 * its owner for DROP and ALTER, and for CREATE DATABASE a role that may
 * create databases and copy that template.  Nobody else gets to stop a
 * database's workers by issuing a command that is going to fail anyway.
 */
static bool
utility_may_stop(Node *parsetree, Oid dboid)
{
	HeapTuple	tup;
	bool		createdb;
	bool		is_template;

	if (jq_database_ownercheck(dboid, GetUserId()))
		return true;
	if (!IsA(parsetree, CreatedbStmt))
		return false;

	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	createdb = HeapTupleIsValid(tup) && ((Form_pg_authid) GETSTRUCT(tup))->rolcreatedb;
	if (HeapTupleIsValid(tup))
		ReleaseSysCache(tup);
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	is_template = HeapTupleIsValid(tup) && ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
	if (HeapTupleIsValid(tup))
		ReleaseSysCache(tup);
	return createdb && is_template;
}

/* Whether the statement is a DROP EXTENSION job_queue. */
static bool
utility_drops_extension(Node *parsetree)
{
	DropStmt   *stmt = (DropStmt *) parsetree;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt) || stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
	{
		if (strcmp(strVal(lfirst(lc)), JQ_EXTENSION_NAME) == 0)
			return true;
	}
	return false;
}

/* Whether the statement ends this session's LISTEN on jq_jobs. */
static bool
utility_ends_listen(Node *parsetree)
{
	if (IsA(parsetree, UnlistenStmt))
	{
		const char *channel = ((UnlistenStmt *) parsetree)->conditionname;

		return channel == NULL || strcmp(channel, JQ_NOTIFY_CHANNEL) == 0;
	}
	return IsA(parsetree, DiscardStmt) &&
		((DiscardStmt *) parsetree)->target == DISCARD_ALL;
}

static void
utility_hook(PlannedStmt *pstmt, const char *queryString, JQ_READ_ONLY_TREE_PARAM
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dboid = utility_database_needed(parsetree);
	bool		dropping = IsA(parsetree, DropdbStmt);

	if (OidIsValid(dboid) && !utility_may_stop(parsetree, dboid))
		dboid = InvalidOid;

	if (OidIsValid(dboid))
		jq_stop_database_workers(dboid, true);
	if (utility_drops_extension(parsetree))
		jq_wake_database_at_commit();
	if (IsA(parsetree, ConstraintsSetStmt))
		jq_job_changed_transaction();

	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, JQ_READ_ONLY_TREE_ARG
								 context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, JQ_READ_ONLY_TREE_ARG
									context, params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			jq_unblock_database(dboid);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* a dropped database stays blocked until the launcher forgets it */
	if (OidIsValid(dboid) && !dropping)
		jq_unblock_database(dboid);
	if (OidIsValid(dboid) && dropping)
		jq_claim_trace_forget_database(dboid);
	if (utility_ends_listen(parsetree))
		jq_listen_stop_at_commit();
	/* pg_database changes when this transaction commits */
	if (IsA(parsetree, CreatedbStmt) || dropping)
		jq_wake_launcher_at_commit();
}

void
jq_utility_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = utility_hook;
}
