-- Schedule expressions of recurring jobs: jq._schedule_next and jq._schedule_check.
-- Only fixed instants; every instant is shown in UTC, with local times beside
-- them where a time zone is involved.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS job_queue;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- the first n fire times after a given instant, each computed from the one before
CREATE FUNCTION cron_fires(schedule text, after timestamptz, n integer,
						   zone text DEFAULT 'UTC')
RETURNS text
LANGUAGE sql AS $$
	WITH RECURSIVE f(i, t) AS (
		SELECT 1, jq._schedule_next(schedule, after, zone)
		UNION ALL
		SELECT i + 1, jq._schedule_next(schedule, t, zone) FROM f WHERE i < n)
	SELECT string_agg(to_char(t, 'YYYY-MM-DD HH24:MI Dy'), ', ' ORDER BY i) FROM f
$$;

-- the same, as rows with the wall-clock time of the zone beside each instant
CREATE FUNCTION cron_local(schedule text, after timestamptz, n integer, zone text)
RETURNS TABLE (utc timestamptz, local timestamp)
LANGUAGE sql AS $$
	WITH RECURSIVE f(i, t) AS (
		SELECT 1, jq._schedule_next(schedule, after, zone)
		UNION ALL
		SELECT i + 1, jq._schedule_next(schedule, t, zone) FROM f WHERE i < n)
	SELECT t, t AT TIME ZONE zone FROM f ORDER BY i
$$;

-- the SQLSTATE and errdetail of a schedule's error, and whether errmsg quotes it
CREATE FUNCTION cron_error(schedule text)
RETURNS TABLE (code text, msg_ok boolean, detail text)
LANGUAGE plpgsql AS $$
DECLARE
	m text;
	d text;
	s text;
BEGIN
	PERFORM jq._schedule_next(schedule, '2024-01-01 00:00:00+00');
	RETURN QUERY SELECT 'none'::text, NULL::boolean, NULL::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
	RETURN QUERY SELECT s, m = format('invalid schedule "%s"', schedule), d;
END
$$;

-- the functions: internal, strict, not executable by PUBLIC
SELECT p.oid::regprocedure, p.prorettype::regtype, p.provolatile, p.proisstrict, p.proparallel,
	   p.proacl IS NOT NULL AND NOT EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0)
	   AS not_public
FROM pg_proc p
WHERE p.pronamespace = 'jq'::regnamespace AND p.proname LIKE '\_schedule%'
ORDER BY p.proname;
SELECT jq._schedule_next(NULL, '2024-01-01 00:00:00+00'), jq._schedule_next('* * * * *', NULL),
	   jq._schedule_next('* * * * *', '2024-01-01 00:00:00+00', NULL), jq._schedule_check(NULL);

/* ---------------------------------------------------------------------
 * Five cron fields, in UTC
 * --------------------------------------------------------------------- */

-- strictly after: the next minute even from a whole minute; seconds are dropped
SELECT a AS after, jq._schedule_next('* * * * *', a) AS next
FROM unnest(ARRAY['2024-01-01 00:00:00', '2024-01-01 00:00:30',
				  '2024-01-01 00:00:59.999999', '2024-12-31 23:59:00']::timestamptz[]) a;
-- the default time zone is UTC
SELECT jq._schedule_next('0 12 * * *', '2024-01-01 00:00:00+00') =
	   jq._schedule_next('0 12 * * *', '2024-01-01 00:00:00+00', 'UTC') AS same;

-- single values, lists, ranges, steps over "*", over ranges and from a value
SELECT s AS schedule, cron_fires(s, '2024-01-01 00:00:00+00', 6) AS fires
FROM unnest(ARRAY[
	'5 * * * *',
	'0,15,45 * * * *',
	'10-12 * * * *',
	'*/20 * * * *',
	'10-40/15 * * * *',
	'50/4 * * * *',
	'0-4/2,30,58-59 * * * *',
	'0 */6 * * *',
	'30 9-17/4 * * *',
	'0 22/1 * * *',
	'0 0 */10 * *',
	'0 0 1 */4 *',
	'0 0 1 2-12/5 *',
	'0 0 * * 1-5/2',
	'0 0 * * */3',
	'*/1 */1 */1 */1 */1',
	'59 23 31 12 *'
]) WITH ORDINALITY AS x(s, n) ORDER BY n;

-- month ends: day 31 only in the months that have it, day 30 all but February
SELECT s AS schedule, cron_fires(s, '2024-01-01 00:00:00+00', 7) AS fires
FROM unnest(ARRAY['0 0 31 * *', '0 0 30 * *', '0 0 28-31 2 *']) WITH ORDINALITY AS x(s, n)
ORDER BY n;

-- February 29: every 4 years, and 2100 is not a leap year (but 2000 was)
SELECT a AS after, cron_fires('0 0 29 2 *', a, 3) AS fires
FROM unnest(ARRAY['1999-01-01', '2024-02-29 00:00', '2096-03-01']::timestamptz[]) a;

-- month and day names, in any case; 0 and 7 are both Sunday
SELECT s AS schedule, cron_fires(s, '2024-01-01 00:00:00+00', 6) AS fires
FROM unnest(ARRAY[
	'0 0 1 JAN *',
	'0 0 1 jan-Mar *',
	'0 0 1 jun,DEC *',
	'0 0 1 feb-nov/3 *',
	'0 12 * * MON-FRI',
	'0 12 * * sat,Sun',
	'0 12 * * 0',
	'0 12 * * 7',
	'0 12 * * 5-7',
	'0 12 * * tue/2'
]) WITH ORDINALITY AS x(s, n) ORDER BY n;

-- day of month and day of week both restricted: either matches (the 13th or a Friday)
SELECT cron_fires('0 0 13 * FRI', '2024-09-01 00:00:00+00', 10) AS thirteenth_or_friday;
-- only one restricted: that one alone
SELECT cron_fires('0 0 * * FRI', '2024-09-01 00:00:00+00', 4) AS fridays,
	   cron_fires('0 0 13 * *', '2024-09-01 00:00:00+00', 4) AS thirteenths;
-- "1-31" restricts, so with a day of week it is every day
SELECT cron_fires('0 0 1-31 * MON', '2024-09-01 00:00:00+00', 4) AS every_day;
-- a field that begins with "*" counts as unrestricted (Vixie cron): both must match,
-- here the 1st, 11th, 21st or 31st that is a Monday
SELECT cron_fires('0 0 */10 * MON', '2024-01-01 00:00:00+00', 4) AS monday_1_11_21_31;
-- a February 29 that is a Sunday: 2032, then 2060
SELECT cron_fires('0 0 29 2 */7', '2024-01-01 00:00:00+00', 2) AS sunday_feb_29;

-- white space around and between fields (spaces and tabs)
SELECT cron_fires(E'  */30 \t 9-10\t* *   MON-FRI  ', '2024-01-05 00:00:00+00', 5) AS fires;

/* ---------------------------------------------------------------------
 * Macros
 * --------------------------------------------------------------------- */

SELECT s AS schedule, cron_fires(s, '2024-01-01 00:00:00+00', 3) AS fires
FROM unnest(ARRAY['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight',
				  '@hourly', '@DAILY', '  @Hourly  ']) WITH ORDINALITY AS x(s, n)
ORDER BY n;

/* ---------------------------------------------------------------------
 * Intervals: N units after the instant passed, exactly
 * --------------------------------------------------------------------- */

SELECT s AS schedule, jq._schedule_next(s, '2024-01-01 00:00:00.25+00') AS next
FROM unnest(ARRAY['every 1 second', 'every 30 seconds', 'every 1 minute', 'every 5 minutes',
				  'every 1 hour', 'every 2 hours', 'every 1 day', 'every 3 days',
				  'every 1 seconds', 'every 2 hour', 'EVERY 10 Minutes', E' every\t007  days ']) WITH ORDINALITY AS x(s, n)
ORDER BY n;
-- a day is 24 hours whatever the time zone: the local time moves with summer time
SELECT * FROM cron_local('every 1 day', '2024-03-30 12:00:00+00', 2, 'Europe/Paris');

/* ---------------------------------------------------------------------
 * Time zones: the fields are read on the zone's clock
 * --------------------------------------------------------------------- */

SELECT z AS zone, s AS schedule, l.*
FROM (VALUES
	('Asia/Tokyo', '0 9 * * *'),			-- UTC+9: 00:00 UTC, strictly after
	('Asia/Kolkata', '30 5 * * *'),			-- UTC+5:30
	('Asia/Kathmandu', '0 0 * * *'),		-- UTC+5:45: the previous day, 18:15 UTC
	('Pacific/Auckland', '0 8 * * MON'),	-- Monday there is Sunday in UTC
	('America/Los_Angeles', '0 20 31 12 *'),	-- New Year's Eve there is in UTC's new year
	('europe/paris', '0 0 1 * *')			-- names in any case
) v(z, s), cron_local(s, '2024-01-01 00:00:00+00', 2, z) l;

-- the same schedule in a zone with summer time: the UTC instant follows the offset
SELECT * FROM cron_local('0 0 1 * *', '2024-01-01 00:00:00+00', 12, 'America/New_York');

/* ---------------------------------------------------------------------
 * Summer time.  A wall-clock time stands for the first instant the zone's
 * clock shows it or later:
 * - clocks go forward (a gap): the skipped times fire once, when the clocks
 *   jump;
 * - clocks go back (a time occurs twice): it fires at its first occurrence
 *   only, so the repeated hour does not fire again.
 * --------------------------------------------------------------------- */

-- Europe/Paris, Sunday 2024-03-31: at 01:00 UTC, 02:00 CET becomes 03:00 CEST.
-- 02:30 does not exist that day: it fires at 01:00 UTC (03:00 CEST), once.
SELECT * FROM cron_local('30 2 * * *', '2024-03-29 12:00:00+00', 3, 'Europe/Paris');
-- 02:00 and 02:30 both fire at 01:00 UTC, once; 03:00 is that instant as well
SELECT * FROM cron_local('*/30 * * * *', '2024-03-30 23:45:00+00', 5, 'Europe/Paris');
-- from the jump itself, the next fire is the next day's
SELECT jq._schedule_next('30 2 * * *', '2024-03-31 01:00:00+00', 'Europe/Paris') AS next;
-- times just before the gap are unaffected
SELECT * FROM cron_local('59 1 * * *', '2024-03-30 12:00:00+00', 2, 'Europe/Paris');

-- Europe/Paris, Sunday 2024-10-27: at 01:00 UTC, 03:00 CEST becomes 02:00 CET.
-- 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET): it fires at 00:30 only.
SELECT * FROM cron_local('30 2 * * *', '2024-10-25 12:00:00+00', 3, 'Europe/Paris');
-- every half hour: 02:00 and 02:30 CEST fire, their repeats at 01:00 and
-- 01:30 UTC do not; 03:00 CET is 02:00 UTC
SELECT * FROM cron_local('*/30 * * * *', '2024-10-26 23:45:00+00', 5, 'Europe/Paris');
-- from inside the repeated hour (02:15 CET) the next fire is 03:00 CET
SELECT jq._schedule_next('*/30 * * * *', '2024-10-27 01:15:00+00', 'Europe/Paris') AS next;
-- from the first 02:30 (00:30 UTC), the next 02:30 is the next day's
SELECT jq._schedule_next('30 2 * * *', '2024-10-27 00:30:00+00', 'Europe/Paris') AS next;

-- America/New_York, Sunday 2024-03-10: at 07:00 UTC, 02:00 EST becomes 03:00 EDT
SELECT * FROM cron_local('30 2 * * *', '2024-03-09 00:00:00+00', 3, 'America/New_York');
-- America/New_York, Sunday 2024-11-03: at 06:00 UTC, 02:00 EDT becomes 01:00 EST.
-- 01:30 fires at 05:30 UTC (EDT) only; hourly skips the repeated 01:00 (06:00 UTC).
SELECT * FROM cron_local('30 1 * * *', '2024-11-02 00:00:00+00', 3, 'America/New_York');
SELECT * FROM cron_local('0 * * * *', '2024-11-03 04:30:00+00', 4, 'America/New_York');

-- Pacific/Apia skipped Friday 2011-12-30 whole: at 10:00 UTC, 2011-12-29 24:00 (UTC-10)
-- became 2011-12-31 00:00 (UTC+14).  That day's noon fires at the jump.
SELECT * FROM cron_local('0 12 * * *', '2011-12-29 00:00:00+00', 3, 'Pacific/Apia');

/* ---------------------------------------------------------------------
 * Errors: each says which field is wrong and how
 * --------------------------------------------------------------------- */

-- the whole error, once
SELECT jq._schedule_next('* * 32 * *', '2024-01-01 00:00:00+00');
SELECT jq._schedule_check('@sometimes');

SELECT s AS schedule, e.*
FROM unnest(ARRAY[
	-- shape
	'',
	E'  \t ',
	'* * * *',
	'* * * * * *',
	'every five minutes please do',
	-- out of range
	'60 * * * *',
	'* 24 * * *',
	'* * 0 * *',
	'* * 32 * *',
	'* * * 0 *',
	'* * * 13 *',
	'* * * * 8',
	'1-99999999999999999999 * * * *',
	-- steps
	'*/0 * * * *',
	'*/61 * * * *',
	'0 0 * * */8',
	'0 0 1 */13 *',
	'1-5/x * * * *',
	'*/ * * * *',
	'*/5/2 * * * *',
	-- ranges and lists
	'5-1 * * * *',
	'0 0 * * FRI-MON',
	'1,,2 * * * *',
	'1, * * * *',
	'1-2-3 * * * *',
	'-5 * * * *',
	'5- * * * *',
	'** * * * *',
	'*5 * * * *',
	-- names
	'x * * * *',
	'0 MON * * *',
	'0 0 * JANUARY *',
	'0 0 * JAN-FEX *',
	'0 0 * * FUN',
	'0 0 * * 1a',
	-- never fires
	'0 0 30 2 *',
	'0 0 30,31 FEB *',
	'0 0 31 4,6,9,11 *',
	'0 0 31 2 */2',
	-- macros
	'@sometimes',
	'@reboot',
	'@',
	'@daily 0',
	'@daily * * * *',
	-- intervals
	'every',
	'every 5',
	'every 5 fortnights',
	'every 5 weeks',
	'every 0 minutes',
	'every -5 minutes',
	'every five minutes',
	'every 5.5 minutes',
	'every 5 minutes please',
	'every 106751992 days',
	'every 99999999999999999999 seconds'
]) WITH ORDINALITY AS x(s, n), cron_error(s) e ORDER BY n;

-- these do fire: the 30th or a Monday; the 31st of March; the 29th of February
SELECT s AS schedule, cron_fires(s, '2024-01-01 00:00:00+00', 3) AS fires
FROM unnest(ARRAY['0 0 30 2 MON', '0 0 31 2,3 *', '0 0 29,30 2 *']) WITH ORDINALITY AS x(s, n)
ORDER BY n;

-- a time zone the server does not know
SELECT jq._schedule_next('0 0 * * *', '2024-01-01 00:00:00+00', 'Mars/Olympus');
SELECT jq._schedule_next('0 0 * * *', '2024-01-01 00:00:00+00', '');
-- instants the answer cannot be computed from, or that are out of range
SELECT jq._schedule_next('* * * * *', 'infinity');
SELECT jq._schedule_next('every 1 minute', '-infinity');
SELECT jq._schedule_next('0 0 1 1 *', '294276-06-01 00:00:00+00');
SELECT jq._schedule_next('every 1 day', '294276-12-31 00:00:00+00');
SELECT jq._schedule_next('every 106751991 days', '2024-01-01 00:00:00+00');
SELECT jq._schedule_next('59 23 31 12 *', '294276-06-01 00:00:00+00') AS last_possible;

-- _schedule_check accepts what _schedule_next accepts, and raises the same errors
SELECT jq._schedule_check('*/5 9-17 * JAN-MAR mon-fri'), jq._schedule_check('@weekly'),
	   jq._schedule_check('every 10 seconds');
SELECT jq._schedule_check('0 0 30 2 *');
SELECT jq._schedule_check('* * * *');

DROP FUNCTION cron_fires(text, timestamptz, integer, text);
DROP FUNCTION cron_local(text, timestamptz, integer, text);
DROP FUNCTION cron_error(text);
