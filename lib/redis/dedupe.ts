import { randomBytes } from 'node:crypto'
import type { ClaimResult, DedupeStore, WaitResult } from '../stores/dedupe.js'
import { GatewayErrors } from '../errors.js'
import { closeClient, createRedisClient, isRedisClient, loadIORedis, type RedisClient, type RedisConnection } from './client.js'
import { RELEASE } from './scripts.js'

export interface RedisDedupeStoreOptions {
  /**
   * a shared client (a Redis or a Cluster; not closed by the store), or where to connect (the store then owns and
   * closes its client). Every command names one key, so a Cluster serves it as well.
   */
  redis: RedisClient | RedisConnection
  /** what the keys are for: `stripe`, `hooks`, `idempotency` */
  namespace: string
  /** first part of every key; default `gw:dedupe` */
  keyPrefix?: string
  /** first poll interval of `wait`; it grows to `maxPollMs` */
  pollMs?: number
  maxPollMs?: number
}

const NAMESPACE = /^[A-Za-z0-9_.:-]{1,64}$/

/**
 * The dedupe store across instances. A key is `<prefix>:<namespace>:<key>` holding `p:<token>` while claimed (with
 * a PX lease, so a crashed holder's claim expires) or `d:<value>` once completed (PX ttl). Claiming is one
 * `SET NX PX GET`; release deletes the key only while it still holds this store's own claim; `wait` polls with a short,
 * growing interval until done, released (or its lease expired) or the timeout. Redis errors reject with
 * GW_STORE_UNAVAILABLE, so a webhook is answered with an error and retried by its sender rather than run twice.
 */
export class RedisDedupeStore implements DedupeStore {
  readonly name = 'redis'
  private readonly clientPromise: Promise<RedisClient>
  private connected: RedisClient | null = null
  private readonly owned: boolean
  private readonly prefix: string
  private readonly pollMs: number
  private readonly maxPollMs: number
  /** this store's live claims: key → its token, so release never removes another holder's claim */
  private readonly claims = new Map<string, string>()
  private readonly sleepers = new Set<() => void>()
  private closed = false

  constructor (options: RedisDedupeStoreOptions) {
    if (!NAMESPACE.test(options.namespace)) {
      throw new GatewayErrors.INVALID_OPTIONS('fastify-gateways/redis-dedupe', 'namespace: must be 1 to 64 characters of A-Za-z0-9_.:-')
    }
    const given = options.redis
    this.owned = !isRedisClient(given)
    const setUp = (client: RedisClient) => {
      if (this.owned) client.on('error', () => {})
      client.defineCommand('gwRelease', { lua: RELEASE, numberOfKeys: 1 })
      this.connected = client
      return client
    }
    this.clientPromise = isRedisClient(given)
      ? Promise.resolve(setUp(given))
      : loadIORedis().then((ioredis) => setUp(createRedisClient(ioredis, given, { connectionName: `gw-dedupe-${options.namespace}` })))
    // a missing ioredis surfaces on the first command
    this.clientPromise.catch(() => {})
    this.prefix = `${options.keyPrefix ?? 'gw:dedupe'}:${options.namespace}:`
    this.pollMs = options.pollMs ?? 25
    this.maxPollMs = options.maxPollMs ?? 250
  }

  async claim (key: string, leaseMs: number): Promise<ClaimResult> {
    const token = `p:${randomBytes(8).toString('hex')}`
    const previous = await this.run((redis) => redis.call('SET', this.prefix + key, token, 'NX', 'PX', Math.max(1, Math.ceil(leaseMs)), 'GET')) as string | null
    if (previous === null) {
      this.claims.set(key, token)
      return { state: 'claimed' }
    }
    if (previous.startsWith('d:')) return { state: 'done', value: previous.slice(2) }
    return { state: 'pending' }
  }

  async complete (key: string, value: string, ttlMs: number): Promise<void> {
    await this.run((redis) => redis.set(this.prefix + key, `d:${value}`, 'PX', Math.max(1, Math.ceil(ttlMs))))
    this.claims.delete(key)
  }

  async release (key: string): Promise<void> {
    const token = this.claims.get(key)
    // a claim this store does not hold (never made, completed, or already released) is not its to give up
    if (token === undefined) return
    this.claims.delete(key)
    await this.run((redis) => (redis as unknown as { gwRelease: (k: string, t: string) => Promise<number> }).gwRelease(this.prefix + key, token))
  }

  async wait (key: string, timeoutMs: number): Promise<WaitResult> {
    const deadline = Date.now() + timeoutMs
    let interval = this.pollMs
    for (;;) {
      const value = await this.run((redis) => redis.get(this.prefix + key))
      if (value === null) return { state: 'released' }
      if (value.startsWith('d:')) return { state: 'done', value: value.slice(2) }
      const left = deadline - Date.now()
      if (left <= 0) return { state: 'timeout' }
      await this.sleep(Math.min(interval, left))
      if (this.closed) return { state: 'timeout' }
      interval = Math.min(interval * 2, this.maxPollMs)
    }
  }

  async close (): Promise<void> {
    this.closed = true
    for (const wake of [...this.sleepers]) wake()
    this.claims.clear()
    if (this.owned) await closeClient(await this.clientPromise.catch(() => null) ?? this.connected as RedisClient).catch(() => {})
  }

  /** the client (once ioredis is loaded), e.g. to check its status */
  get redis (): RedisClient | null {
    return this.connected
  }

  /** Resolves the client once it exists (ioredis loaded); rejects with GW_MISSING_PEER without ioredis. */
  async client (): Promise<RedisClient> {
    return await this.clientPromise
  }

  private async run<T> (command: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new GatewayErrors.STORE_UNAVAILABLE('the store is closed')
    try {
      return await command(await this.clientPromise)
    } catch (err) {
      throw new GatewayErrors.STORE_UNAVAILABLE((err as Error).message, { cause: err })
    }
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        this.sleepers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      timer.unref()
      this.sleepers.add(wake)
    })
  }
}
