'use strict';
/*
 * The benchmark's handlers in Node.js, for each system (test/bench/lang.sh):
 * noop does nothing; stamp(tag) appends "tag time" to $BENCH_STAMPS.
 */
const fs = require('fs');

const stamp = (tag) => fs.appendFileSync(process.env.BENCH_STAMPS,
  `${tag} ${(performance.timeOrigin + performance.now()) / 1000}\n`);

const handlers = { noop: () => null, stamp };

function jqWorker() {
  const { Worker } = require('job-queue');
  const worker = new Worker();
  worker.task('noop', handlers.noop);
  worker.task('stamp', (payload) => stamp(payload));
  return worker;
}

module.exports = { handlers, stamp, jqWorker };
