/*-------------------------------------------------------------------------
 *
 * internal_sql.h
 *	  The extension's own SQL, as the extension owner, under a pinned
 *	  search_path (internal_sql.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_INTERNAL_SQL_H
#define JQ_INTERNAL_SQL_H

/* jq_as_owner switches to the owner and pins the path until jq_as_caller */
#define JQ_PINNED_SEARCH_PATH "pg_catalog, pg_temp"

typedef struct JqUserContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
} JqUserContext;

/* where jq_execute_for_caller gathers the ids a statement returns */
typedef struct JqIds
{
	int64	   *ids;
	uint64		n;
	uint64		max;
} JqIds;

struct _SPI_plan;

extern void jq_pin_search_path(int source, int action);
extern void jq_as_owner(JqUserContext *ctx);
extern void jq_as_caller(JqUserContext *ctx);
extern struct _SPI_plan *jq_prepare(const char *sql, int nargs, Oid *types);
extern int	jq_execute_plan(struct _SPI_plan *plan, Datum *values, const char *nulls,
							long count);
extern int	jq_execute_plan_latest(struct _SPI_plan *plan, Datum *values, const char *nulls,
								   long count);
extern int	jq_execute(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls);
extern int	jq_execute_for_caller(struct _SPI_plan *plan, Datum *values, const char *nulls,
								  JqIds *ids);

#endif							/* JQ_INTERNAL_SQL_H */
