'use strict';
/*
 * Enqueue task jobs from the application's own connection: each helper runs
 * one statement on the pg Client (or PoolClient) it is given, so the jobs
 * commit or roll back with the caller's transaction.
 */

// options of jq_enqueue a caller may pass, with the SQL type of each
const OPTIONS = {
  queue: 'text',
  priority: 'integer',
  runAt: 'timestamptz',
  maxAttempts: 'integer',
  timeout: 'interval',
  uniqueKey: 'text',
  dependsOn: 'bigint[]',
  onDependencyFailure: 'text',
};
const BULK_OPTIONS = ['queue', 'priority', 'runAt', 'maxAttempts', 'timeout'];

function sqlName(option) {
  return option.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

// ", name => $n::type" for each option given, numbered from first
function namedArgs(options, allowed, first) {
  let sql = '';
  const values = [];
  for (const [name, value] of Object.entries(options || {})) {
    if (!allowed.includes(name)) throw new TypeError(`unknown option ${name}`);
    if (value === undefined || value === null) continue;
    values.push(value);
    sql += `, ${sqlName(name)} => $${first + values.length - 1}::${OPTIONS[name]}`;
  }
  return { sql, values };
}

/** Enqueue one task job in the client's current transaction; resolves to its id (a string). */
async function enqueue(client, task, payload, options) {
  const named = namedArgs(options, Object.keys(OPTIONS), 3);
  const res = await client.query(
    `SELECT jq_enqueue($1::text, kind => 'task', payload => $2::jsonb${named.sql}) AS id`,
    [task, payload === undefined ? null : JSON.stringify(payload), ...named.values]);
  return res.rows[0].id;
}

/** Enqueue one task job per payload in one statement; resolves to their ids. */
async function enqueueMany(client, task, payloads, options) {
  const named = namedArgs(options, BULK_OPTIONS, 3);
  const res = await client.query(
    `SELECT jq_enqueue_bulk(array_fill($1::text, ARRAY[cardinality($2::jsonb[])]),
                            kind => 'task', payloads => $2::jsonb[]${named.sql}) AS ids`,
    [task, payloads.map((p) => JSON.stringify(p === undefined ? null : p)), ...named.values]);
  return res.rows[0].ids;
}

module.exports = { enqueue, enqueueMany };
