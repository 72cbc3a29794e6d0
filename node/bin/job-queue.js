#!/usr/bin/env node
'use strict';
/* job-queue worker MODULE: run the Worker a module exports. */
const path = require('path');
const { parseArgs } = require('util');
const { Worker } = require('../lib');

const HELP = `usage: job-queue worker [options] MODULE

Load MODULE (a path, for example ./app/jobs.js), take the job-queue Worker it
exports (module.exports.worker, or the export named by --attr) and run it until
SIGTERM or SIGINT.  Options given here override the Worker's own.

options:
  -h, --help             show this help and exit
  --attr NAME            name of the exported Worker (default: worker)
  --dsn DSN              connection for claims and outcomes; may be a
                         transaction-pooling PgBouncer (default: $JQ_DSN, else
                         the Worker's, else libpq-style PG* environment)
  --listen-dsn DSN       direct connection for LISTEN (default: $JQ_LISTEN_DSN,
                         else --dsn)
  --no-listen            no LISTEN: look for jobs every --poll-interval seconds
  -c, --concurrency N    jobs run at once (default 8)
  --prefetch N           jobs claimed ahead of the free handlers (default 3 x
                         concurrency)
  -q, --queue QUEUE      take jobs of this queue (repeat for more; default: all)
  --lease SECONDS        lease of a claimed job (default 60)
  --heartbeat SECONDS    between heartbeats of running jobs (default lease / 3)
  --grace SECONDS        to finish running jobs after SIGTERM before they are
                         given back (default 30)
  --poll-interval SECONDS  between looks for jobs without a notification
                         (default 60 with LISTEN, 1 without)
  --name NAME            worker name kept as the jobs' lease_owner (host:pid)
  --log-level LEVEL      debug, info (one line per job), warning (the default:
                         failures and problems only) or error
`;

function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        attr: { type: 'string', default: 'worker' },
        dsn: { type: 'string' },
        'listen-dsn': { type: 'string' },
        'no-listen': { type: 'boolean' },
        concurrency: { type: 'string', short: 'c' },
        prefetch: { type: 'string' },
        queue: { type: 'string', short: 'q', multiple: true },
        lease: { type: 'string' },
        heartbeat: { type: 'string' },
        grace: { type: 'string' },
        'poll-interval': { type: 'string' },
        name: { type: 'string' },
        'log-level': { type: 'string' },
      },
    });
  } catch (e) {
    process.stderr.write(`${e.message}\n\n${HELP}`);
    process.exit(2);
  }
  const { values: o, positionals } = parsed;
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positionals[0] !== 'worker' || positionals.length !== 2) {
    process.stderr.write(HELP);
    process.exit(2);
  }
  const mod = require(path.resolve(positionals[1]));
  const worker = mod[o.attr] || (mod instanceof Worker ? mod : null);
  if (!(worker instanceof Worker)) {
    process.stderr.write(`${positionals[1]} exports no job-queue Worker named ${o.attr}\n`);
    process.exit(2);
  }
  const number = (v) => (v === undefined ? undefined : Number(v));
  const set = {
    dsn: o.dsn || process.env.JQ_DSN,
    listenDsn: o['listen-dsn'] || process.env.JQ_LISTEN_DSN,
    concurrency: number(o.concurrency),
    prefetch: number(o.prefetch),
    queues: o.queue,
    lease: number(o.lease),
    heartbeat: number(o.heartbeat),
    grace: number(o.grace),
    pollInterval: number(o['poll-interval']),
    name: o.name,
    logLevel: o['log-level'] || process.env.JQ_LOG_LEVEL,
  };
  for (const [key, value] of Object.entries(set)) if (value !== undefined) worker[key] = value;
  if (o['no-listen']) worker.listen = false;
  worker.run().then(() => process.exit(0), (e) => {
    process.stderr.write(`${e.stack || e}\n`);
    process.exit(1);
  });
}

main();
