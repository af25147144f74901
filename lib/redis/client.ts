import { Redis, type RedisOptions } from 'ioredis'

/** Where to connect: a `redis://`/`rediss://` URL or ioredis options (host, port, password, tls, sentinels...). */
export type RedisConnection = string | RedisOptions

export interface RedisClientTuning {
  /** a command without a reply after this long rejects (a hung server fails fast instead of piling up) */
  commandTimeoutMs?: number
  /** reconnect backoff: 100 ms doubling up to this, plus jitter */
  maxBackoffMs?: number
  /** shown in `CLIENT LIST` */
  connectionName?: string
}

/**
 * An ioredis client set up for a gateway that must fail fast: no offline queue (a command while disconnected rejects
 * at once instead of waiting in an unbounded buffer), no resend of commands in flight when the connection drops, a
 * command timeout, and reconnects forever with a capped exponential backoff.
 */
export function createRedisClient (connection: RedisConnection, tuning: RedisClientTuning = {}, extra: RedisOptions = {}): Redis {
  const maxBackoffMs = tuning.maxBackoffMs ?? 2000
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: tuning.commandTimeoutMs ?? 2000,
    connectTimeout: Math.max(tuning.commandTimeoutMs ?? 2000, 1000),
    retryStrategy: (times) => backoff(times, maxBackoffMs),
    ...(tuning.connectionName === undefined ? {} : { connectionName: tuning.connectionName }),
    ...extra
  }
  return typeof connection === 'string'
    ? new Redis(connection, options)
    : new Redis({ ...connection, ...options })
}

/** 100, 200, 400... ms capped at `max`, with up to 20% jitter so instances do not reconnect in lockstep. */
export function backoff (times: number, max: number): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(times - 1, 0), 16), max)
  return Math.round(base * (1 + Math.random() * 0.2))
}

/** Resolves when `redis` is ready, rejects after `timeoutMs` (the client keeps trying in the background). */
export async function whenReady (redis: Redis, timeoutMs: number): Promise<void> {
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
export async function closeClient (redis: Redis, timeoutMs = 1000): Promise<void> {
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
