import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import { loadPeer } from '../peer.js'

/** Where to connect: a `redis://`/`rediss://` URL or ioredis options (host, port, password, tls, sentinels...). */
export type RedisConnection = string | RedisOptions

/** A command client of either kind. */
export type RedisClient = Redis | Cluster

export type IORedis = typeof import('ioredis')

/** ioredis, loaded the first time a Redis feature is used (an optional peer dependency: GW_MISSING_PEER without it). */
export async function loadIORedis (): Promise<IORedis> {
  return await loadPeer<IORedis>('ioredis', 'redis', async () => await import('ioredis'))
}

export interface RedisClientTuning {
  /** a command without a reply after this long rejects (a hung server fails fast instead of piling up) */
  commandTimeoutMs?: number
  /** reconnect backoff: 100 ms doubling up to this, plus jitter */
  maxBackoffMs?: number
  /** shown in `CLIENT LIST` */
  connectionName?: string
}

/** Options of a client that fails fast: no offline queue, no resend of what was in flight, a command timeout. */
export function failFastOptions (tuning: RedisClientTuning = {}): RedisOptions {
  const maxBackoffMs = tuning.maxBackoffMs ?? 2000
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: tuning.commandTimeoutMs ?? 2000,
    connectTimeout: Math.max(tuning.commandTimeoutMs ?? 2000, 1000),
    retryStrategy: (times) => backoff(times, maxBackoffMs),
    ...(tuning.connectionName === undefined ? {} : { connectionName: tuning.connectionName })
  }
}

/**
 * An ioredis client set up for a gateway that must fail fast: no offline queue (a command while disconnected rejects
 * at once instead of waiting in an unbounded buffer), no resend of commands in flight when the connection drops, a
 * command timeout, and reconnects forever with a capped exponential backoff.
 */
export function createRedisClient (ioredis: IORedis, connection: RedisConnection, tuning: RedisClientTuning = {}, extra: RedisOptions = {}): Redis {
  const options: RedisOptions = { ...failFastOptions(tuning), ...extra }
  return typeof connection === 'string'
    ? new ioredis.Redis(connection, options)
    : new ioredis.Redis({ ...connection, ...options })
}

/**
 * An ioredis Cluster over `seeds` (`host:port`), failing fast like `createRedisClient`: commands while a slot has no
 * reachable master reject instead of queueing; the slot map is refreshed every second and on every redirection.
 */
export function createRedisCluster (ioredis: IORedis, seeds: readonly string[], tuning: RedisClientTuning = {}, extra: Partial<ClusterOptions> = {}): Cluster {
  const maxBackoffMs = tuning.maxBackoffMs ?? 2000
  const { redisOptions, ...rest } = extra
  return new ioredis.Cluster(seeds.map(parseSeed), {
    enableOfflineQueue: false,
    enableReadyCheck: true,
    scaleReads: 'master',
    slotsRefreshInterval: 1000,
    slotsRefreshTimeout: Math.max(tuning.commandTimeoutMs ?? 2000, 1000),
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 8,
    clusterRetryStrategy: (times) => backoff(times, maxBackoffMs),
    ...rest,
    redisOptions: { ...failFastOptions(tuning), ...redisOptions }
  })
}

export function parseSeed (seed: string): { host: string, port: number } {
  const colon = seed.lastIndexOf(':')
  return { host: seed.slice(0, colon), port: Number(seed.slice(colon + 1)) }
}

/** 100, 200, 400... ms capped at `max`, with up to 20% jitter so instances do not reconnect in lockstep. */
export function backoff (times: number, max: number): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(times - 1, 0), 16), max)
  return Math.round(base * (1 + Math.random() * 0.2))
}

/** Duck typing of an ioredis client or cluster a host passes in (instead of where to connect). */
export function isRedisClient (value: unknown): value is RedisClient {
  const v = value as Redis
  return typeof v?.defineCommand === 'function' && typeof v?.call === 'function' && typeof v?.status === 'string'
}

export function isCluster (client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true
}

/** Resolves when `redis` is ready, rejects after `timeoutMs` (the client keeps trying in the background). */
export async function whenReady (redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady)
      reject(new Error(`redis not ready within ${timeoutMs} ms (status ${redis.status})`))
    }, timeoutMs)
    const onReady = () => {
      clearTimeout(timer)
      resolve()
    }
    redis.once('ready', onReady)
  })
}

/** Closes a client: QUIT when connected (bounded), else drops the socket and stops reconnecting. */
export async function closeClient (redis: RedisClient, timeoutMs = 1000): Promise<void> {
  if (redis.status === 'end') return
  if (redis.status !== 'ready') {
    redis.disconnect()
    return
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    redis.quit().catch(() => {}),
    new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
  ])
  clearTimeout(timer)
  if ((redis.status as string) !== 'end') redis.disconnect()
}
