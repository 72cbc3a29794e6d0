/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Schedule expressions of recurring jobs: parsing, and the next fire time.
 *
 * A schedule is one of:
 *
 *	- five cron fields, "minute hour day-of-month month day-of-week", each a
 *	  comma-separated list of "*", "a" or "a-b", each optionally followed by
 *	  a step "/n" ("a/n" runs from a to the last value).  Months may be
 *	  named JAN-DEC and days SUN-SAT (in any case); day of week 7 is Sunday,
 *	  like 0.  As in Vixie cron, when neither the day-of-month nor the
 *	  day-of-week field begins with "*", a day matches when either of them
 *	  does; otherwise it must match both;
 *	- a macro: @yearly (@annually), @monthly, @weekly, @daily (@midnight),
 *	  @hourly, which stand for the cron fields they usually do;
 *	- "every N seconds|minutes|hours|days": N units after the previous fire
 *	  time, which the caller passes.  A day is 24 hours here: the form is
 *	  elapsed time, and the time zone plays no part in it.
 *
 * Cron fields are matched against the wall-clock time of the given time
 * zone, computed with PostgreSQL's own time zone library.  A wall-clock time
 * stands for the first instant at which the zone's clock shows it or a later
 * time.  So a time that occurs twice when clocks go back fires once, at its
 * first occurrence; and all the times skipped when clocks go forward fire
 * once, at the instant the clocks jump.
 *
 * The search moves a month, day, hour or minute at a time, skipping whatever
 * does not match: a fire time a year away takes a few hundred steps, not
 * one per minute.  Parsing rejects a schedule that can never fire (a day of
 * month that none of its months has), so the search always ends.
 *
 * jq._schedule_next() computes fire times; jq._schedule_check() only
 * validates, with the same parser and the same errors.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/*
 * Fire times are looked for this far ahead at most.  The Gregorian calendar
 * repeats itself, weekdays included, every 400 years, and parsing rejects
 * schedules that never fire, so this is only a guard against a bug.
 */
#define CRON_SEARCH_YEARS	401

#define CRON_FIELDS			5
#define CRON_DAY_OF_MONTH	2	/* index into cron_fields */
#define CRON_MONTH			3
#define CRON_DAY_OF_WEEK	4

/* more tokens than any accepted form has, to quote the first unexpected one */
#define CRON_MAX_TOKENS		6

#define CRON_NUMBER_MAX		(PG_INT64_MAX / 100)

#define CRON_BIT(n)			(UINT64CONST(1) << (n))

#define CRON_HINT \
	"A schedule is five cron fields (minute hour day-of-month month day-of-week), " \
	"one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, " \
	"or \"every N seconds|minutes|hours|days\"."

/* an ereport for a schedule the parser rejects; the rest is errdetail */
#define cron_invalid(schedule, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("invalid schedule \"%s\"", (schedule)), \
			 errdetail(__VA_ARGS__), \
			 errhint(CRON_HINT)))

/* A parsed schedule: an interval, or one bit set per matching value. */
typedef struct CronSchedule
{
	int64		interval;		/* "every N ..." in microseconds, else 0 */
	uint64		minutes;		/* 0-59 */
	uint64		hours;			/* 0-23 */
	uint64		days;			/* 1-31 */
	uint64		months;			/* 1-12 */
	uint64		weekdays;		/* 0-6, 0 = Sunday */
	bool		days_star;		/* day-of-month field begins with "*" */
	bool		weekdays_star;	/* day-of-week field begins with "*" */
} CronSchedule;

/* A wall-clock time, to the minute. */
typedef struct CronTime
{
	int			year;
	int			mon;			/* 1-12 */
	int			mday;			/* 1-31 */
	int			hour;
	int			min;
} CronTime;

static const char *const cron_month_names[] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
	"JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL
};

static const char *const cron_day_names[] = {
	"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL
};

typedef struct CronField
{
	const char *name;			/* for messages */
	int			min;			/* smallest value */
	int			max;			/* largest value written */
	int			last;			/* last value of "*" (6 for day of week) */
	const char *const *names;	/* names of min, min + 1, ...; or NULL */
	const char *name_kind;		/* for messages: "month name" */
	const char *name_range;		/* for messages: "JAN-DEC" */
} CronField;

static const CronField cron_fields[CRON_FIELDS] = {
	{"minute", 0, 59, 59, NULL, NULL, NULL},
	{"hour", 0, 23, 23, NULL, NULL, NULL},
	{"day of month", 1, 31, 31, NULL, NULL, NULL},
	{"month", 1, 12, 12, cron_month_names, "month name", "JAN-DEC"},
	{"day of week", 0, 7, 6, cron_day_names, "day name", "SUN-SAT"},
};

static const struct
{
	const char *name;
	const char *fields;
}			cron_macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

static const struct
{
	const char *name;			/* singular; the plural adds "s" */
	int64		usecs;
}			cron_units[] = {
	{"second", USECS_PER_SEC},
	{"minute", USECS_PER_MINUTE},
	{"hour", USECS_PER_HOUR},
	{"day", USECS_PER_DAY},
};

/* ---------------------------------------------------------------------
 * Parsing
 * --------------------------------------------------------------------- */

/*
 * Split str in place at white space.  Returns the number of tokens, of
 * which the first CRON_MAX_TOKENS are stored.
 */
static int
cron_split(char *str, char **tokens)
{
	int			n = 0;
	char	   *p = str;

	for (;;)
	{
		while (isspace((unsigned char) *p))
			p++;
		if (*p == '\0')
			return n;
		if (n < CRON_MAX_TOKENS)
			tokens[n] = p;
		n++;
		while (*p != '\0' && !isspace((unsigned char) *p))
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

static bool
cron_all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char) *s))
			return false;
	return true;
}

/*
 * The value of a string of digits, or CRON_NUMBER_MAX if it is larger: more
 * than any field value, step or interval count accepts.
 */
static int64
cron_number(const char *s)
{
	int64		value = 0;

	for (; *s; s++)
	{
		value = value * 10 + (*s - '0');
		if (value >= CRON_NUMBER_MAX)
			return CRON_NUMBER_MAX;
	}
	return value;
}

/*
 * Read the number or name at *p in field fieldno (0-based), leaving *p after
 * it.  elem is the list element being read, for messages.
 */
static int
cron_parse_value(const char *schedule, int fieldno, const char *elem,
				 const char **p)
{
	const CronField *f = &cron_fields[fieldno];
	const char *start = *p;
	char	   *token;
	int64		value;

	while (isalnum((unsigned char) **p))
		(*p)++;
	if (*p == start)
		cron_invalid(schedule, "Field %d (%s) \"%s\" is malformed.",
					 fieldno + 1, f->name, elem);
	token = pnstrdup(start, *p - start);

	if (cron_all_digits(token))
	{
		value = cron_number(token);
		if (value < f->min || value > f->max)
			cron_invalid(schedule, "Field %d (%s) \"%s\" is out of range %d-%d.",
						 fieldno + 1, f->name, token, f->min, f->max);
		return (int) value;
	}

	for (int i = 0; f->names && f->names[i]; i++)
		if (pg_strcasecmp(token, f->names[i]) == 0)
			return f->min + i;

	if (f->names)
		cron_invalid(schedule, "Field %d (%s) \"%s\" is not a number or a %s (%s).",
					 fieldno + 1, f->name, token, f->name_kind, f->name_range);
	cron_invalid(schedule, "Field %d (%s) \"%s\" is not a number.",
				 fieldno + 1, f->name, token);
	return 0;					/* keep the compiler quiet */
}

/* Add the values of one list element of field fieldno to *set. */
static void
cron_parse_element(const char *schedule, int fieldno, const char *elem,
				   uint64 *set)
{
	const CronField *f = &cron_fields[fieldno];
	const char *p = elem;
	int			lo;
	int			hi;
	int64		step = 1;

	if (*p == '*')
	{
		lo = f->min;
		hi = f->last;
		p++;
	}
	else
	{
		lo = hi = cron_parse_value(schedule, fieldno, elem, &p);
		if (*p == '-')
		{
			p++;
			hi = cron_parse_value(schedule, fieldno, elem, &p);
			if (lo > hi)
				cron_invalid(schedule, "Field %d (%s) range \"%s\" is reversed.",
							 fieldno + 1, f->name, elem);
		}
		else if (*p == '/')
			hi = Max(lo, f->last);	/* "a/n": from a to the last value */
	}

	if (*p == '/')
	{
		int			max_step = f->last - f->min + 1;

		p++;
		if (!cron_all_digits(p))
			cron_invalid(schedule, "Field %d (%s) step \"%s\" is not a number.",
						 fieldno + 1, f->name, p);
		step = cron_number(p);
		if (step < 1 || step > max_step)
			cron_invalid(schedule, "Field %d (%s) step \"%s\" is out of range 1-%d.",
						 fieldno + 1, f->name, p, max_step);
		p += strlen(p);
	}

	if (*p != '\0')
		cron_invalid(schedule, "Field %d (%s) \"%s\" is malformed.",
					 fieldno + 1, f->name, elem);

	for (int v = lo; v <= hi; v += step)
		*set |= CRON_BIT(fieldno == CRON_DAY_OF_WEEK && v == 7 ? 0 : v);
}

/* The values of field fieldno, a comma-separated list. */
static uint64
cron_parse_field(const char *schedule, int fieldno, const char *text)
{
	uint64		set = 0;
	const char *p = text;

	for (;;)
	{
		const char *comma = strchr(p, ',');
		char	   *elem = comma ? pnstrdup(p, comma - p) : pstrdup(p);

		if (*elem == '\0')
			cron_invalid(schedule, "Field %d (%s) \"%s\" has an empty list element.",
						 fieldno + 1, cron_fields[fieldno].name, text);
		cron_parse_element(schedule, fieldno, elem, &set);
		if (comma == NULL)
			return set;
		p = comma + 1;
	}
}

/*
 * The five cron fields.  A day of month restricted alone (the day-of-week
 * field begins with "*") must exist in one of the months, or the schedule
 * would never fire; every other combination fires within 400 years.
 */
static void
cron_parse_fields(const char *schedule, char **fields, CronSchedule *cs)
{
	uint64	   *sets[CRON_FIELDS] = {
		&cs->minutes, &cs->hours, &cs->days, &cs->months, &cs->weekdays
	};

	for (int i = 0; i < CRON_FIELDS; i++)
		*sets[i] = cron_parse_field(schedule, i, fields[i]);
	cs->days_star = fields[CRON_DAY_OF_MONTH][0] == '*';
	cs->weekdays_star = fields[CRON_DAY_OF_WEEK][0] == '*';

	if (!cs->days_star && cs->weekdays_star)
	{
		bool		possible = false;

		/* day_tab[1] is a leap year's: February 29 counts */
		for (int m = 1; m <= 12; m++)
			if ((cs->months & CRON_BIT(m)) &&
				(cs->days & (CRON_BIT(day_tab[1][m - 1] + 1) - 1)))
				possible = true;
		if (!possible)
			cron_invalid(schedule,
						 "Field 3 (day of month) \"%s\" never occurs in field 4 (month) \"%s\", so the schedule never fires.",
						 fields[CRON_DAY_OF_MONTH], fields[CRON_MONTH]);
	}
}

/* "every N units": the tokens after "every" */
static void
cron_parse_interval(const char *schedule, char **tokens, int ntokens,
					CronSchedule *cs)
{
	const char *count;
	const char *unit;
	int64		n = 0;
	int			u;

	if (ntokens < 3)
		cron_invalid(schedule,
					 "Expected a count and a unit after \"every\", as in \"every 5 minutes\".");
	count = tokens[1];
	unit = tokens[2];
	if (ntokens > 3)
		cron_invalid(schedule, "Unexpected \"%s\" after \"%s %s %s\".",
					 tokens[3], tokens[0], count, unit);

	if (cron_all_digits(count))
		n = cron_number(count);
	if (n <= 0)
		cron_invalid(schedule, "Count \"%s\" after \"every\" must be a positive integer.",
					 count);

	for (u = 0; u < (int) lengthof(cron_units); u++)
	{
		size_t		len = strlen(cron_units[u].name);

		if (pg_strncasecmp(unit, cron_units[u].name, len) == 0 &&
			(unit[len] == '\0' || pg_strcasecmp(unit + len, "s") == 0))
			break;
	}
	if (u == (int) lengthof(cron_units))
		cron_invalid(schedule, "Unknown interval unit \"%s\".", unit);

	if (n > PG_INT64_MAX / cron_units[u].usecs)
		cron_invalid(schedule, "Interval \"%s %s\" is too long.", count, unit);
	cs->interval = n * cron_units[u].usecs;
}

/* Parse schedule into *cs, or raise an error that says what is wrong. */
static void
cron_parse(const char *schedule, CronSchedule *cs)
{
	char	   *tokens[CRON_MAX_TOKENS];
	int			ntokens = cron_split(pstrdup(schedule), tokens);

	memset(cs, 0, sizeof(*cs));

	if (ntokens == 0)
		cron_invalid(schedule, "The schedule is empty.");

	if (tokens[0][0] == '@')
	{
		const char *macro = tokens[0];
		int			i;

		for (i = 0; i < (int) lengthof(cron_macros); i++)
			if (pg_strcasecmp(macro, cron_macros[i].name) == 0)
				break;
		if (i == (int) lengthof(cron_macros))
			cron_invalid(schedule, "Unknown macro \"%s\".", macro);
		if (ntokens > 1)
			cron_invalid(schedule, "Unexpected \"%s\" after macro \"%s\".",
						 tokens[1], macro);
		ntokens = cron_split(pstrdup(cron_macros[i].fields), tokens);
	}
	else if (pg_strcasecmp(tokens[0], "every") == 0)
	{
		cron_parse_interval(schedule, tokens, ntokens, cs);
		return;
	}

	if (ntokens != CRON_FIELDS)
		cron_invalid(schedule, "Expected %d fields, got %d.", CRON_FIELDS, ntokens);
	cron_parse_fields(schedule, tokens, cs);
}

/* ---------------------------------------------------------------------
 * The next fire time
 * --------------------------------------------------------------------- */

static pg_tz *
cron_time_zone(const char *name)
{
	pg_tz	   *tz = pg_tzset(name);

	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", name),
				 errhint("Use a name from pg_timezone_names, such as 'UTC' or 'Europe/Paris'.")));
	if (!pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" appears to use leap seconds", name),
				 errdetail("PostgreSQL does not support leap seconds.")));
	return tz;
}

static void
cron_out_of_range(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

/* Moving a wall-clock time on; each resets the smaller units. */
static void
cron_next_month(CronTime *t)
{
	if (++t->mon > 12)
	{
		t->mon = 1;
		t->year++;
	}
	t->mday = 1;
	t->hour = 0;
	t->min = 0;
}

static void
cron_next_day(CronTime *t)
{
	if (++t->mday > day_tab[isleap(t->year)][t->mon - 1])
		cron_next_month(t);
	t->hour = 0;
	t->min = 0;
}

static void
cron_next_hour(CronTime *t)
{
	if (++t->hour > 23)
		cron_next_day(t);
	t->min = 0;
}

static void
cron_next_minute(CronTime *t)
{
	if (++t->min > 59)
		cron_next_hour(t);
}

static bool
cron_day_matches(const CronSchedule *cs, const CronTime *t)
{
	int			weekday = j2day(date2j(t->year, t->mon, t->mday));
	bool		day = (cs->days & CRON_BIT(t->mday)) != 0;
	bool		weekday_ok = (cs->weekdays & CRON_BIT(weekday)) != 0;

	if (cs->days_star || cs->weekdays_star)
		return day && weekday_ok;
	return day || weekday_ok;
}

/*
 * The first instant at which the clock of tz shows t or later: t itself
 * when it occurs once, its first occurrence when clocks went back over it,
 * the end of the gap when clocks jumped over it.  Like PostgreSQL's
 * DetermineTimeZoneOffset, this assumes transitions are over 48 hours apart.
 */
static TimestampTz
cron_first_instant(const CronTime *t, pg_tz *tz)
{
	int			jd = date2j(t->year, t->mon, t->mday);
	pg_time_t	wall;			/* t read as UTC, in seconds since 1970 */
	pg_time_t	prev;
	pg_time_t	boundary;
	pg_time_t	before;
	pg_time_t	after;
	long int	before_gmtoff;
	long int	after_gmtoff;
	int			before_isdst;
	int			after_isdst;
	int			res;
	bool		valid_before;
	bool		valid_after;
	TimestampTz result;

	if (jd >= TIMESTAMP_END_JULIAN)
		cron_out_of_range();
	wall = (pg_time_t) (jd - UNIX_EPOCH_JDATE) * SECS_PER_DAY +
		t->hour * SECS_PER_HOUR + t->min * SECS_PER_MINUTE;

	/* the zone's next transition after a day before t, and offsets around it */
	prev = wall - SECS_PER_DAY;
	res = pg_next_dst_boundary(&prev, &before_gmtoff, &before_isdst,
							   &boundary, &after_gmtoff, &after_isdst, tz);
	if (res < 0)
		elog(ERROR, "could not find the time zone transitions around %lld",
			 (long long) wall);

	before = wall - before_gmtoff;
	after = wall - after_gmtoff;
	valid_before = res == 0 || before < boundary;
	valid_after = res == 1 && after >= boundary;

	if (valid_before && valid_after)
		result = time_t_to_timestamptz(Min(before, after));
	else if (valid_before)
		result = time_t_to_timestamptz(before);
	else if (valid_after)
		result = time_t_to_timestamptz(after);
	else
		result = time_t_to_timestamptz(boundary);

	if (!IS_VALID_TIMESTAMP(result))
		cron_out_of_range();
	return result;
}

/*
 * The first fire time of cron fields cs strictly after instant after.
 *
 * Every wall-clock time up to the one at after stands for an instant at or
 * before after (see cron_first_instant), so the search starts at the next
 * minute; candidates whose first instant is still not later (the second
 * pass over an hour when clocks went back) are skipped.
 */
static TimestampTz
cron_next(const CronSchedule *cs, TimestampTz after, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	CronTime	t;
	int			last_year;

	if (timestamp2tm(after, &tzoff, &tm, &fsec, NULL, tz) != 0)
		cron_out_of_range();
	t.year = tm.tm_year;
	t.mon = tm.tm_mon;
	t.mday = tm.tm_mday;
	t.hour = tm.tm_hour;
	t.min = tm.tm_min;
	cron_next_minute(&t);
	last_year = t.year + CRON_SEARCH_YEARS;

	while (t.year <= last_year)
	{
		TimestampTz fire;

		if (!(cs->months & CRON_BIT(t.mon)))
		{
			cron_next_month(&t);
			continue;
		}
		if (!cron_day_matches(cs, &t))
		{
			cron_next_day(&t);
			continue;
		}
		if (!(cs->hours & CRON_BIT(t.hour)))
		{
			cron_next_hour(&t);
			continue;
		}
		if (!(cs->minutes & CRON_BIT(t.min)))
		{
			cron_next_minute(&t);
			continue;
		}
		fire = cron_first_instant(&t, tz);
		if (fire > after)
			return fire;
		cron_next_minute(&t);
	}
	elog(ERROR, "no fire time within %d years", CRON_SEARCH_YEARS);
	return 0;					/* keep the compiler quiet */
}

/* ---------------------------------------------------------------------
 * SQL-callable functions
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(jq_schedule_next);

/*
 * jq._schedule_next(schedule, after, time_zone): the first fire time of
 * schedule strictly after after, its cron fields read in time_zone.
 */
Datum
jq_schedule_next(PG_FUNCTION_ARGS)
{
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	CronSchedule cs;
	pg_tz	   *tz;
	TimestampTz result;

	cron_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &cs);
	tz = cron_time_zone(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (TIMESTAMP_NOT_FINITE(after))
		cron_out_of_range();

	if (cs.interval == 0)
		PG_RETURN_TIMESTAMPTZ(cron_next(&cs, after, tz));
	if (pg_add_s64_overflow(after, cs.interval, &result) ||
		!IS_VALID_TIMESTAMP(result))
		cron_out_of_range();
	PG_RETURN_TIMESTAMPTZ(result);
}

PG_FUNCTION_INFO_V1(jq_schedule_check);

/* jq._schedule_check(schedule): raise the error schedule would raise, if any. */
Datum
jq_schedule_check(PG_FUNCTION_ARGS)
{
	CronSchedule cs;

	cron_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &cs);
	PG_RETURN_VOID();
}
