'use strict';
/*
 * A worker that runs task jobs with the application's own async functions.
 *
 * One loop owns the database connections: it claims task jobs with
 * jq_dequeue for the names it has handlers for, starts their handlers (at
 * most `concurrency` at once, up to `prefetch` more claimed ahead), records
 * their outcomes (jq_complete, jq_fail) in batches, keeps the leases of
 * claimed jobs with jq_heartbeat, and sleeps until a handler ends, a
 * notification comes on the LISTEN connection, or a timer is due.
 *
 * Outcomes are recorded over a connection of their own, one batch at a
 * time, while the loop goes on claiming and starting jobs: a claim commits
 * without waiting for its WAL flush, a batch of outcomes waits for it, and
 * the outcomes that come in meanwhile make the next batch.
 *
 * Timeouts and cancellation: a job that runs past its timeout is failed (and
 * retried as the job's rules say) and a job whose lease was lost (cancelled,
 * or a heartbeat came too late) is dropped; in both cases job.signal aborts,
 * for a handler that looks at it, and whatever the handler returns later is
 * ignored.
 */
const os = require('os');
const { Client, utils: { prepareValue } } = require('pg');

const DEQUEUE = `
SELECT d.id, d.queue, d.command, d.payload, d.attempt, d.max_attempts,
       extract(epoch FROM d.timeout)::float8 AS timeout
FROM jq_dequeue(queue => NULL, queues => $1::text[], kinds => ARRAY['task'],
                tasks => $2::text[], max_jobs => $3::integer, lease => $4::interval,
                worker => $5::text) d`;
const COMPLETE = `
SELECT c.id, true AS held
FROM unnest(jq_complete_many($1::bigint[], $2::jsonb[], $3::integer[])) c(id)`;
const FAIL = `
SELECT c.id, jq_fail(c.id, c.error, c.retry, c.attempt, c.result) AS held
FROM unnest($1::bigint[], $2::text[], $3::boolean[], $4::integer[], $5::jsonb[])
     AS c(id, error, retry, attempt, result)`;
const HEARTBEAT = `
SELECT c.id, jq_heartbeat(c.id, $1::interval, c.attempt) AS expires
FROM unnest($2::bigint[], $3::integer[]) AS c(id, attempt)`;
const RELEASE = `
SELECT c.id, jq_release(c.id, c.attempt)
FROM unnest($1::bigint[], $2::integer[]) AS c(id, attempt)`;

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40 };

/** Thrown by a handler: the job fails at once, without retries. */
class Fatal extends Error {
  constructor(message) {
    super(message);
    this.name = 'Fatal';
  }
}

class Job {
  constructor(row) {
    this.id = row.id;
    this.queue = row.queue;
    this.task = row.command;
    this.payload = row.payload;
    this.attempt = row.attempt;
    this.maxAttempts = row.max_attempts;
    this.timeout = row.timeout;       // seconds, or null
    this._abort = new AbortController();
    this.signal = this._abort.signal; // aborts when the worker gives the job up
    this.started = null;              // when its handler began (ms)
    this.duration = null;             // how long its handler ran (ms)
  }
}

class Worker {
  /**
   * dsn: the connection for claims and outcomes (it may go through a
   * transaction-pooling PgBouncer); listenDsn: a direct (session) connection
   * for LISTEN, dsn when not given; listen: false for no LISTEN at all (the
   * worker then looks for jobs every pollInterval seconds).
   */
  constructor(options = {}) {
    this.dsn = options.dsn;
    this.listenDsn = options.listenDsn;
    this.listen = options.listen !== false;
    this.concurrency = options.concurrency || 8;
    this.prefetch = options.prefetch;
    this.queues = options.queues || null;
    this.lease = options.lease || 60;
    this.heartbeat = options.heartbeat;
    this.grace = options.grace === undefined ? 30 : options.grace;
    this.pollInterval = options.pollInterval;
    this.name = options.name || `${os.hostname()}:${process.pid}`;
    this.logLevel = options.logLevel || 'warning';
    this.tasks = new Map();
    this._stopAt = null;
    this._wakeUp = null;
  }

  /**
   * Register handler (an async function, or one that returns a value) for
   * the task jobs called name.  It gets the job's payload and the Job; what
   * it returns (anything JSON can hold) is the job's result.  A throw fails
   * the attempt: retried while attempts remain, unless options.retry is
   * false or the error is a Fatal.
   */
  task(name, handler, options = {}) {
    this.tasks.set(name, { handler, retry: options.retry !== false });
    return this;
  }

  /** Stop claiming; finish running jobs within grace seconds, then give them back. */
  stop(grace) {
    this._stopAt = Date.now() + 1000 * (grace === undefined ? this.grace : grace);
    this._wake();
  }

  _log(level, message) {
    if (LEVELS[level] >= LEVELS[this.logLevel]) {
      process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} ${message}\n`);
    }
  }

  _wake() {
    if (this._wakeUp) {
      const wake = this._wakeUp;
      this._wakeUp = null;
      wake();
    }
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this._wakeUp = null; resolve(); }, Math.max(ms, 0));
      this._wakeUp = () => { clearTimeout(timer); resolve(); };
    });
  }

  /** Run until stop() or SIGTERM/SIGINT, then resolve. */
  async run({ signals = true } = {}) {
    if (this.tasks.size === 0) throw new Error('the worker has no task handlers');
    const heartbeat = 1000 * (this.heartbeat || this.lease / 3);
    const poll = 1000 * (this.pollInterval || (this.listen ? 60 : 1));
    const prefetch = this.prefetch === undefined ? 3 * this.concurrency : this.prefetch;
    const onSignal = (sig) => {
      if (this._stopAt === null) {
        this._log('info', `worker ${this.name}: ${sig}, stopping (grace ${this.grace} s)`);
        this.stop();
      } else {
        this.stop(0);
      }
    };
    if (signals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    this._running = new Map();   // id -> Job, claimed and not recorded
    this._waiting = [];          // claimed, handler not started
    this._done = [];             // [job, outcome] not yet recorded
    this._recording = null;      // the batch of outcomes being recorded
    this._recordFailed = null;   // why the last batch could not be recorded
    let conn = null;
    let rec = null;
    let listen = null;
    let wantClaim = true;
    let nextPoll = 0;
    let nextHeartbeat = 0;
    let failures = 0;
    this._log('info', `worker ${this.name}: ${this.concurrency} at once, tasks `
      + `${[...this.tasks.keys()].sort().join(', ')}, queues ${(this.queues || ['all']).join(', ')}`);
    try {
      for (;;) {
        const now = Date.now();
        const stopping = this._stopAt !== null;
        if (stopping && this._idle()) break;
        try {
          if (conn === null) {
            conn = new Client(connectionConfig(this.dsn));
            conn.on('error', () => {});
            await conn.connect();
          }
          if (rec === null) {
            rec = new Client(connectionConfig(this.dsn));
            rec.on('error', () => {});
            await rec.connect();
          }
          if (this._recordFailed !== null) {
            const e = this._recordFailed;
            this._recordFailed = null;
            throw e;
          }
          if (listen === null && this.listen) {
            listen = new Client(connectionConfig(this.listenDsn || this.dsn));
            listen.on('error', (e) => { listen.lost = e; this._wake(); });
            listen.on('notification', () => { wantClaim = true; this._wake(); });
            await listen.connect();
            await listen.query('SELECT jq_listen()');
            wantClaim = true;
          }
          if (listen !== null && listen.lost) throw listen.lost;
          if (stopping) await this._release(conn, now >= this._stopAt);
          const held = this._running.size;
          const free = stopping || held > this.concurrency ? 0
            : this.concurrency + prefetch - held;
          if (this._done.length > 0 && this._recording === null) this._record(rec);
          if (wantClaim && free > 0) {
            const claimed = await this._recordAndClaim(conn, [], free);
            if (claimed.length > 0 && held === 0) nextHeartbeat = Date.now() + heartbeat;
            for (const job of claimed) {
              this._running.set(job.id, job);
              this._waiting.push(job);
            }
            if (wantClaim) {
              wantClaim = claimed.length === free;
              nextPoll = now + poll;
            }
            this._startHandlers();
          }
          if (this._running.size > 0 && Date.now() >= nextHeartbeat) {
            await this._heartbeat(conn);
            nextHeartbeat = Date.now() + heartbeat;
          }
          failures = 0;
        } catch (e) {
          if (!isConnectionError(e)) throw e;
          failures += 1;
          this._log('error', `database connection lost: ${e.message}`);
          if (this._recording !== null) await this._recording;
          this._recordFailed = null;
          for (const c of [conn, rec, listen]) if (c) c.end().catch(() => {});
          conn = rec = listen = null;
          await this._sleep(Math.min(30000, 500 * 2 ** Math.min(failures, 6)));
          continue;
        }
        this._checkTimeouts();
        if (this._stopAt !== null && this._idle()) continue;

        let wait = nextPoll - Date.now();
        if (this._running.size > 0) {
          wait = Math.min(wait, nextHeartbeat - Date.now(), this._nextTimeout() - Date.now());
        }
        if (this._stopAt !== null) wait = Math.min(wait, this._stopAt - Date.now());
        if ((this._done.length > 0 && this._recording === null)
            || (wantClaim && this._stopAt === null && this._running.size <= this.concurrency)) {
          wait = 0;
        }
        if (wait > 0) await this._sleep(wait);
        else await new Promise(setImmediate);
        if (Date.now() >= nextPoll) wantClaim = true;
      }
    } finally {
      if (signals) {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
      }
      if (this._recording !== null) await this._recording;
      for (const c of [conn, rec, listen]) if (c) await c.end().catch(() => {});
      this._log('info', `worker ${this.name} stopped`);
    }
  }

  _startHandlers() {
    let active = 0;
    for (const job of this._running.values()) if (job.started !== null) active += 1;
    while (active < this.concurrency && this._waiting.length > 0) {
      const job = this._waiting.shift();
      if (!this._running.has(job.id)) continue;
      active += 1;
      this._runHandler(job);
    }
  }

  async _runHandler(job) {
    job.started = Date.now();
    const spec = this.tasks.get(job.task);
    let outcome;
    try {
      const result = await spec.handler(job.payload, job);
      outcome = { complete: true, result: JSON.stringify(result === undefined ? null : result) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const type = err.name || 'Error';
      const stack = err.stack || `${type}: ${err.message}`;
      outcome = {
        complete: false,
        error: stack.startsWith(`${type}: `) ? stack : `${type}: ${err.message}\n${stack}`,
        retry: spec.retry && !(err instanceof Fatal),
        details: { type, message: err.message, traceback: stack },
      };
    }
    job.duration = Date.now() - job.started;
    if (this._running.get(job.id) === job) {
      this._running.delete(job.id);
      this._done.push([job, outcome]);
      this._startHandlers();
      this._wake();
    }
  }

  /** Nothing held, nothing left to record. */
  _idle() {
    return this._running.size === 0 && this._done.length === 0 && this._recording === null;
  }

  /*
   * Record the outcomes done so far over rec, in the background; the loop
   * is woken when they are recorded.  A failure is raised by the loop.
   */
  _record(rec) {
    const done = this._done;
    this._done = [];
    this._recording = this._recordAndClaim(rec, done, 0)
      .catch((e) => { this._recordFailed = e; })
      .finally(() => { this._recording = null; this._wake(); });
  }

  /*
   * Record the outcomes done and claim up to free jobs: one transaction,
   * sent as one query (one round trip).  A transaction that only claims
   * does not wait for its commit to be flushed: lost in a crash of the
   * server, the claim is undone, and the job is run again, as with any lost
   * lease.
   */
  async _recordAndClaim(conn, done, free) {
    const completed = done.filter(([, o]) => o.complete);
    const failed = done.filter(([, o]) => !o.complete);
    const statements = ['BEGIN'];
    if (done.length === 0) statements.push('SET LOCAL synchronous_commit = off');
    if (completed.length > 0) {
      statements.push(inline(conn, COMPLETE, [completed.map(([j]) => j.id),
        completed.map(([, o]) => o.result), completed.map(([j]) => j.attempt)]));
    }
    if (failed.length > 0) {
      statements.push(inline(conn, FAIL, [failed.map(([j]) => j.id),
        failed.map(([, o]) => o.error), failed.map(([, o]) => o.retry),
        failed.map(([j]) => j.attempt), failed.map(([, o]) => JSON.stringify(o.details))]));
    }
    if (free > 0) {
      statements.push(inline(conn, DEQUEUE, [this.queues, [...this.tasks.keys()], free,
        `${this.lease} seconds`, this.name]));
    }
    statements.push('COMMIT');
    let results;
    try {
      results = (await conn.query(statements.join(';'))).filter((r) => r.command === 'SELECT');
    } catch (e) {
      await conn.query('ROLLBACK').catch(() => {});
      throw e;
    }
    if (completed.length > 0) this._logOutcomes(results.shift().rows, completed);
    if (failed.length > 0) this._logOutcomes(results.shift().rows, failed);
    return free > 0 ? results.shift().rows.map((row) => new Job(row)) : [];
  }

  _logOutcomes(rows, outcomes) {
    const held = new Map(rows.map((r) => [r.id, r.held]));
    for (const [job, o] of outcomes) {
      const ms = (job.duration || 0).toFixed(1);
      if (!held.get(job.id)) {
        this._log('warning', `job ${job.id} ${job.task}: no longer held (cancelled or lease expired), outcome dropped`);
      } else if (o.complete) {
        this._log('info', `job ${job.id} ${job.task} succeeded in ${ms} ms`);
      } else {
        const again = o.retry && job.attempt < job.maxAttempts ? ', will retry' : '';
        this._log('warning', `job ${job.id} ${job.task} failed (attempt ${job.attempt} of `
          + `${job.maxAttempts}${again}): ${o.error.split('\n')[0]}`);
      }
    }
  }

  async _heartbeat(conn) {
    const jobs = [...this._running.values()];
    const res = await conn.query(HEARTBEAT, [`${this.lease} seconds`, jobs.map((j) => j.id),
      jobs.map((j) => j.attempt)]);
    for (const row of res.rows) {
      const job = this._running.get(row.id);
      if (row.expires === null && job) {
        this._running.delete(job.id);
        job._abort.abort();
        this._log('warning', `job ${job.id} ${job.task}: cancelled or lease lost, handler abandoned`);
        this._startHandlers();
      }
    }
  }

  /** Give back the jobs not started, and the running ones too if startedToo. */
  async _release(conn, startedToo) {
    const jobs = [...this._running.values()].filter((j) => startedToo || j.started === null);
    if (jobs.length === 0) return;
    for (const job of jobs) {
      this._running.delete(job.id);
      job._abort.abort();
    }
    await conn.query(RELEASE, [jobs.map((j) => j.id), jobs.map((j) => j.attempt)]);
    this._log('info', `worker ${this.name}: ${jobs.length} job(s) given back`);
  }

  _nextTimeout() {
    let next = Infinity;
    for (const job of this._running.values()) {
      if (job.timeout && job.started !== null) next = Math.min(next, job.started + 1000 * job.timeout);
    }
    return next;
  }

  _checkTimeouts() {
    const now = Date.now();
    for (const job of [...this._running.values()]) {
      if (job.timeout && job.started !== null && now >= job.started + 1000 * job.timeout) {
        this._running.delete(job.id);
        job._abort.abort();
        const message = `job exceeded its timeout of ${Math.round(job.timeout * 1000)} ms`;
        this._done.push([job, { complete: false, error: message, retry: true,
          details: { type: 'Timeout', message, traceback: null } }]);
        this._startHandlers();
      }
    }
  }
}

// sql with its $n parameters written in as literals, for a multi-statement query
function inline(conn, sql, values) {
  return sql.replace(/\$(\d+)/g, (_, n) => {
    const value = prepareValue(values[n - 1]);
    return value === null ? 'NULL' : conn.escapeLiteral(String(value));
  });
}

// libpq's keywords that pg names otherwise, or not at all
const KEYWORDS = { dbname: 'database', sslmode: null, application_name: 'application_name' };

/*
 * pg's configuration for a DSN: a URL (postgresql://...) as pg takes it, or
 * libpq's "key=value ..." form, as the other workers of job_queue take it;
 * what is not given comes from the PG* environment, as with libpq.
 */
function connectionConfig(dsn) {
  if (!dsn || /^\w+:\/\//.test(dsn)) return { connectionString: dsn || undefined };
  const config = {};
  const re = /\s*(\w+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))/gy;
  let m;
  let end = 0;
  while ((m = re.exec(dsn)) !== null) {
    end = re.lastIndex;
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
    const key = m[1] in KEYWORDS ? KEYWORDS[m[1]] : m[1];
    if (key !== null) config[key] = key === 'port' ? Number(value) : value;
  }
  if (dsn.slice(end).trim() !== '') throw new Error(`invalid DSN: ${dsn}`);
  return config;
}

// errors that mean the connection is gone: reconnect instead of giving up
function isConnectionError(e) {
  return !e.code || /^(08|57P)/.test(e.code) || e.code === 'ECONNREFUSED'
    || e.code === 'ECONNRESET' || e.code === 'EPIPE' || e.code === 'ENOENT';
}

module.exports = { Worker, Job, Fatal, connectionConfig };
