/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher background worker (launcher.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_LAUNCHER_H
#define JQ_LAUNCHER_H

extern bool jq_preloaded;
extern void jq_launcher_register(void);
extern PGDLLEXPORT void jq_launcher_main(Datum main_arg);

#endif							/* JQ_LAUNCHER_H */
