'use strict';
/*
 * Handlers of the worker tests (test/perl/LangWorkerTest.pm), in Node.js.
 * Each run of a handler appends "event id attempt worker" lines to
 * $JQ_TEST_EVENTS, so the tests can count how often each job ran.
 */
const fs = require('fs');
const { Worker, Fatal } = require('job-queue');

const worker = new Worker();
const event = (what, job) => fs.appendFileSync(process.env.JQ_TEST_EVENTS,
  `${what} ${job.id} ${job.attempt} ${worker.name}\n`);

worker.task('add', (payload) => payload.a + payload.b);

worker.task('boom', (payload, job) => {
  event('run', job);
  throw new RangeError(`boom ${JSON.stringify(payload)}`);
});

worker.task('fatal', (payload, job) => {
  event('run', job);
  throw new Fatal('no retry');
});

worker.task('record', (payload, job) => event('run', job));

worker.task('sleep', async (payload, job) => {
  event('start', job);
  const stopped = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), payload.seconds * 1000);
    job.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(true); });
  });
  event(stopped ? 'cancelled' : 'end', job);
  return stopped ? null : 'slept';
});

module.exports = { worker };
