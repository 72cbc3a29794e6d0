'use strict';
/* Enqueue with the Node.js helpers (test/perl/LangWorkerTest.pm): node enqueue.js DSN */
const { Client } = require('pg');
const { enqueue, enqueueMany, connectionConfig } = require('job-queue');

async function main() {
  const client = new Client(connectionConfig(process.argv[2]));
  await client.connect();
  await client.query('BEGIN');
  await enqueue(client, 'add', { a: 1, b: 1 }, { queue: 'helpers', priority: 3 });
  await client.query('COMMIT');
  await client.query('BEGIN');
  await enqueue(client, 'add', { a: 5, b: 5 }, { queue: 'helpers' });
  await client.query('ROLLBACK');
  await client.query('BEGIN');
  await enqueueMany(client, 'add', [{ a: 1, b: 2 }, { a: 2, b: 2 }], { queue: 'bulk' });
  await client.query('COMMIT');
  await client.end();
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
