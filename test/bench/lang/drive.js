'use strict';
/*
 * Benchmark driver for the Node.js systems: node drive.js SYSTEM
 *
 * SYSTEM is jq-node, graphile or bullmq; the output is drive.py's (drain,
 * latency, idle lines).  The workers run in a child process
 * (node drive.js SYSTEM --worker).
 */
const { spawn } = require('child_process');
const fs = require('fs');

const SYSTEM = process.argv[2];
const JOBS = Number(process.env.BENCH_JOBS || 20000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 8);
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS || 50);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS || 20);
const { DSN_URL, BENCH_DSN, BENCH_REDIS_PORT } = process.env;
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const jobs = require('./node_jobs');

function stamps() {
  try {
    const s = {};
    for (const line of fs.readFileSync(process.env.BENCH_STAMPS, 'utf8').split('\n')) {
      const [tag, t] = line.split(' ');
      if (t) s[tag] = Number(t);
    }
    return s;
  } catch (e) {
    return {};
  }
}

async function waitStamp(tag, seconds) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const s = stamps();
    if (tag in s) return s[tag];
    await sleep(0.5);
  }
  throw new Error(`${SYSTEM}: no stamp ${tag} after ${seconds} s`);
}

// each system: its worker, how to enqueue, how many statements/commands while idle
async function system() {
  if (SYSTEM === 'jq-node' || SYSTEM === 'graphile') {
    const { Client } = require('pg');
    const { connectionConfig } = require('job-queue');
    const client = new Client(connectionConfig(BENCH_DSN));
    await client.connect();
    const idle = async () => {
      await client.query('SELECT pg_stat_statements_reset()');
      await sleep(IDLE_SECONDS * 1000);
      const res = await client.query(`SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_statements
                                      WHERE query NOT LIKE '%pg_stat_statements%'`);
      return Number(res.rows[0].n);
    };
    if (SYSTEM === 'jq-node') {
      return {
        idle,
        worker: async () => {
          const w = jobs.jqWorker();
          w.dsn = BENCH_DSN;
          w.concurrency = CONCURRENCY;
          await w.run();
        },
        drain: async () => {
          await client.query(`SELECT jq_enqueue('stamp', kind => 'task', payload => '"first"')`);
          await client.query(`SELECT jq_enqueue_bulk(array_fill('noop'::text, ARRAY[$1::integer]),
                                                     kind => 'task')`, [JOBS - 2]);
          await client.query(`SELECT jq_enqueue('stamp', kind => 'task', payload => '"last"')`);
        },
        stamp: (tag) => client.query(`SELECT jq_enqueue('stamp', kind => 'task', payload => $1::jsonb)`,
          [JSON.stringify(tag)]),
      };
    }
    const { run, runMigrations } = require('graphile-worker');
    const taskList = { noop: async () => {}, stamp: async (tag) => jobs.stamp(tag) };
    return {
      idle,
      worker: async () => {
        const runner = await run({ connectionString: DSN_URL, concurrency: CONCURRENCY,
          noHandleSignals: false, pollInterval: 2000, taskList,
          logger: new (require('graphile-worker').Logger)(() => () => {}) });
        await runner.promise;
      },
      drain: async () => {
        // graphile-worker's own schema first
        await runMigrations({ connectionString: DSN_URL });
        await client.query(`SELECT graphile_worker.add_job('stamp', '"first"'::json)`);
        await client.query(`SELECT graphile_worker.add_job('noop', '{}'::json)
                            FROM generate_series(1, $1::integer)`, [JOBS - 2]);
        await client.query(`SELECT graphile_worker.add_job('stamp', '"last"'::json)`);
      },
      stamp: (tag) => client.query('SELECT graphile_worker.add_job($1, $2::json)',
        ['stamp', JSON.stringify(tag)]),
    };
  }
  if (SYSTEM === 'bullmq') {
    const { Queue, Worker } = require('bullmq');
    const connection = { host: '127.0.0.1', port: Number(BENCH_REDIS_PORT) };
    const queue = new Queue('bench', { connection });
    const opts = { removeOnComplete: true, removeOnFail: true };
    return {
      idle: async () => {
        const Redis = require('ioredis');
        const redis = new Redis(connection);
        const count = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))[1]);
        const before = await count();
        await sleep(IDLE_SECONDS * 1000);
        return (await count()) - before - 1;
      },
      worker: async () => {
        const w = new Worker('bench', async (job) => jobs.handlers[job.name](job.data),
          { connection, concurrency: CONCURRENCY, removeOnComplete: { count: 0 } });
        await new Promise((resolve) => process.on('SIGTERM', () => w.close().then(resolve)));
      },
      drain: async () => {
        await queue.add('stamp', 'first', opts);
        for (let i = 0; i < JOBS - 2; i += 1000) {
          const n = Math.min(1000, JOBS - 2 - i);
          await queue.addBulk(Array.from({ length: n }, () => ({ name: 'noop', data: null, opts })));
        }
        await queue.add('stamp', 'last', opts);
      },
      stamp: (tag) => queue.add('stamp', tag, opts),
    };
  }
  throw new Error(`unknown system ${SYSTEM}`);
}

async function main() {
  const sys = await system();
  if (process.argv[3] === '--worker') {
    await sys.worker();
    process.exit(0);
  }
  await sys.drain();
  const child = spawn(process.execPath, [__filename, SYSTEM, '--worker'], { stdio: 'inherit' });
  try {
    const first = await waitStamp('first', 120);
    const last = await waitStamp('last', 1200);
    console.log(`drain ${((JOBS - 1) / (last - first)).toFixed(0)}`);
    await sleep(1000);
    const lat = [];
    for (let i = 0; i < LATENCY_JOBS; i += 1) {
      await sys.stamp(`l${i}`);
      const t0 = now();
      lat.push((await waitStamp(`l${i}`, 30) - t0) * 1000);
      await sleep(50);
    }
    lat.sort((a, b) => a - b);
    console.log(`latency ${lat[Math.floor(lat.length / 2)].toFixed(2)} ${lat[Math.ceil(lat.length * 0.95) - 1].toFixed(2)}`);
    await sleep(1000);
    console.log(`idle ${((await sys.idle()) * 60 / IDLE_SECONDS).toFixed(0)}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
