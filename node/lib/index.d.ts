import type { ClientBase } from 'pg';

/** Options of jq_enqueue. */
export interface EnqueueOptions {
  queue?: string;
  priority?: number;
  runAt?: Date | string;
  maxAttempts?: number;
  /** an interval: '30 seconds', '5 minutes' */
  timeout?: string;
  uniqueKey?: string;
  dependsOn?: Array<string | number>;
  onDependencyFailure?: 'cancel' | 'run';
}

export type BulkEnqueueOptions = Pick<EnqueueOptions, 'queue' | 'priority' | 'runAt' | 'maxAttempts' | 'timeout'>;

/** Enqueue one task job in the client's current transaction; resolves to its id. */
export function enqueue(client: ClientBase, task: string, payload?: unknown,
                        options?: EnqueueOptions): Promise<string>;

/** Enqueue one task job per payload in one statement; resolves to their ids. */
export function enqueueMany(client: ClientBase, task: string, payloads: unknown[],
                            options?: BulkEnqueueOptions): Promise<string[]>;

/** pg's client configuration for a DSN: a URL, or libpq's "key=value ..." form. */
export function connectionConfig(dsn?: string): import('pg').ClientConfig;

/** A claimed task job, as its handler sees it. */
export class Job<P = any> {
  readonly id: string;
  readonly queue: string;
  readonly task: string;
  readonly payload: P;
  readonly attempt: number;
  readonly maxAttempts: number;
  /** seconds, or null */
  readonly timeout: number | null;
  /** aborts when the worker gives the job up: timeout, cancel, lost lease, shutdown */
  readonly signal: AbortSignal;
  readonly started: number | null;
  readonly duration: number | null;
}

/** Thrown by a handler: the job fails at once, without retries. */
export class Fatal extends Error {}

export type Handler<P = any, R = unknown> = (payload: P, job: Job<P>) => R | Promise<R>;

export interface WorkerOptions {
  /** connection for claims and outcomes; may be a transaction-pooling PgBouncer */
  dsn?: string;
  /** direct (session) connection for LISTEN; dsn when not given */
  listenDsn?: string;
  /** false: no LISTEN, look for jobs every pollInterval seconds */
  listen?: boolean;
  /** handlers run at once (default 8) */
  concurrency?: number;
  /** jobs claimed ahead of the free handlers (default 3 x concurrency) */
  prefetch?: number;
  /** queues to take jobs of (default: all) */
  queues?: string[] | null;
  /** lease of a claimed job, seconds (default 60) */
  lease?: number;
  /** seconds between heartbeats (default lease / 3) */
  heartbeat?: number;
  /** seconds to finish running jobs after SIGTERM (default 30) */
  grace?: number;
  /** seconds between looks for jobs without a notification (default 60, or 1 without LISTEN) */
  pollInterval?: number;
  /** kept as the jobs' lease_owner (default host:pid) */
  name?: string;
  /** 'info': one line per job; 'warning' (default): failures and problems only */
  logLevel?: 'debug' | 'info' | 'warning' | 'error';
}

export class Worker {
  constructor(options?: WorkerOptions);
  dsn?: string;
  listenDsn?: string;
  listen: boolean;
  concurrency: number;
  prefetch?: number;
  queues: string[] | null;
  lease: number;
  heartbeat?: number;
  grace: number;
  pollInterval?: number;
  name: string;
  logLevel: 'debug' | 'info' | 'warning' | 'error';
  /** Register the handler of the task jobs called name. */
  task<P = any, R = unknown>(name: string, handler: Handler<P, R>, options?: { retry?: boolean }): this;
  /** Run until stop() or SIGTERM/SIGINT (unless signals is false). */
  run(options?: { signals?: boolean }): Promise<void>;
  /** Stop claiming; finish running jobs within grace seconds, then give them back. */
  stop(grace?: number): void;
}
