'use strict';
/*
 * job-queue for Node.js applications: enqueue task jobs from the
 * application's own transactions, and run them with its own functions in a
 * Worker.  See README.md of the job_queue repository.
 */
const { enqueue, enqueueMany } = require('./client');
const { Worker, Job, Fatal, connectionConfig } = require('./worker');

module.exports = { enqueue, enqueueMany, Worker, Job, Fatal, connectionConfig };
