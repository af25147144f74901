import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { z } from 'zod'
import { GatewayErrors } from '../errors.js'
import { parseOptions } from '../options.js'
import {
  closeClient, createRedisClient, createRedisCluster, failFastOptions, isCluster, isRedisClient, loadIORedis, parseSeed,
  type RedisClient, type RedisConnection
} from './client.js'
import { RedisKeys } from './keys.js'
import { HISTORY, LIVE, POSITION, PRESENCE_READ, PRESENCE_TOUCH, PRESENCE_WRITE, PUBLISH } from './scripts.js'
import { Subscriptions } from './subscriptions.js'

/** The part of a pino logger the bus uses (app.log fits). */
export interface BusLogger {
  warn (obj: object, msg: string): void
  info (obj: object, msg: string): void
}

const SEED = /^[^\s:/]+:\d{1,5}$/

export const RedisBusOptionsSchema = z.strictObject({
  /** a redis:// or rediss:// URL, ioredis options, or your own ioredis client or Cluster (not closed by the bus) */
  redis: z.union([
    z.custom<RedisClient>(isRedisClient),
    z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL' }),
    z.record(z.string(), z.unknown())
  ]).optional(),
  /** `host:port` seeds of a Redis Cluster (instead of `redis`): sharded pub/sub, rooms spread over the shards */
  cluster: z.array(z.string().regex(SEED, { error: 'each seed must be host:port' })).min(1).optional(),
  /** more ioredis Cluster options (e.g. `redisOptions: { password, tls }`, `natMap`) */
  clusterOptions: z.record(z.string(), z.unknown()).optional(),
  /** first part of every key and channel; instances that should act as one share it (not `prefix`: Fastify's) */
  keyPrefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:-' }).default('gw'),
  /** events kept per room for resume (trimmed approximately: a room may keep up to about 100 more) */
  historySize: z.number().int().min(0).max(100_000).default(100),
  /** a room's history (and its epoch) expires this long after its last publish */
  historyTtlMs: z.number().int().min(1000).default(24 * 3600 * 1000),
  /** an event larger than this (bytes of its data JSON) is delivered but not kept (a resume across it is a gap) */
  historyEventMaxBytes: z.number().int().min(256).default(256 * 1024),
  /** a crashed instance's members disappear from presence this long after its last heartbeat */
  presenceTtlMs: z.number().int().min(300).default(15_000),
  /** heartbeat interval; default a third of presenceTtlMs */
  heartbeatMs: z.number().int().min(50).optional(),
  /** how long `direct` waits for the target instance's answer */
  directTimeoutMs: z.number().int().min(10).default(2000),
  /** a Redis command without a reply after this long fails (publish rejects); also how long a subscription may take */
  commandTimeoutMs: z.number().int().min(50).default(2000),
  /** reconnect backoff cap */
  maxBackoffMs: z.number().int().min(10).default(2000),
  /** names this bus's connections (`CLIENT LIST`); default random */
  instanceId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).optional(),
  log: z.custom<BusLogger>((v) => typeof (v as BusLogger)?.warn === 'function' && typeof (v as BusLogger)?.info === 'function', {
    message: 'must be a logger with warn and info (app.log)'
  }).optional()
}).refine((o) => o.heartbeatMs === undefined || o.heartbeatMs < o.presenceTtlMs, {
  message: 'heartbeatMs must be shorter than presenceTtlMs', path: ['heartbeatMs']
}).refine((o) => (o.redis === undefined) !== (o.cluster === undefined), {
  message: 'give exactly one of redis (a URL, options or a client) and cluster (seeds)', path: ['redis']
})

export type RedisBusOptions = z.input<typeof RedisBusOptionsSchema>
export type ParsedRedisBusOptions = z.output<typeof RedisBusOptionsSchema>

export type StreamEntry = [string, string[]]

/** The scripts, as commands of the command client (ioredis `defineCommand`, EVALSHA with a fallback to EVAL). */
export interface Scripts {
  gwPublish (...args: Array<string | number>): Promise<[string, number]>
  gwHistory (...args: Array<string | number>): Promise<[string, number, number, StreamEntry[]]>
  gwPosition (...args: Array<string | number>): Promise<[string, number]>
  gwPresenceWrite (...args: Array<string | number>): Promise<number>
  gwPresenceTouch (...args: Array<string | number>): Promise<number>
  gwPresenceRead (...args: Array<string | number>): Promise<Array<number | string>>
  gwLive (...args: Array<string | number>): Promise<Array<number | string>>
}

/** Something the heartbeat keeps alive or rewrites (presence). */
export interface HeartbeatPart {
  beat (lost: boolean): Promise<void>
}

/**
 * What the broker, presence and node control share: the options, the command client (one Redis, or a Cluster), the
 * subscriber connections, readiness, and the heartbeat.
 *
 * ioredis is loaded when the bus opens (an optional peer); until then, and while Redis is unreachable, commands
 * reject with GW_BUS_UNAVAILABLE at once (no offline queue) and `failing()` says why.
 */
export class RedisCore {
  readonly options: ParsedRedisBusOptions
  readonly keys: RedisKeys
  readonly busId: string
  readonly heartbeatMs: number
  readonly isCluster: boolean
  /** the member-id prefix of the registry (its instance id), once the registry started node control */
  instance: string | null = null
  log: BusLogger | undefined
  command: (RedisClient & Scripts) | null = null
  subscriptions: Subscriptions | null = null
  readonly parts: HeartbeatPart[] = []
  readonly opened: Promise<void>
  private readonly owned: boolean
  private closedFlag = false
  private publishFailed = false
  private heartbeatFailed = false
  private mastersFailing = false
  private commandDown = false
  private beating = false
  private closing = false
  private heartbeat: NodeJS.Timeout | null = null
  private readonly readyWaiters = new Set<() => void>()
  /** since when this instance has been listed in the live set without a break (null: not (yet) listed) */
  listedSince: number | null = null

  constructor (raw: RedisBusOptions) {
    this.options = parseOptions('fastify-gateways/redis-bus', RedisBusOptionsSchema, raw)
    this.keys = new RedisKeys(this.options.keyPrefix)
    this.busId = this.options.instanceId ?? randomBytes(6).toString('hex')
    this.heartbeatMs = this.options.heartbeatMs ?? Math.floor(this.options.presenceTtlMs / 3)
    this.log = this.options.log
    const given = isRedisClient(this.options.redis) ? this.options.redis : null
    this.owned = given === null
    this.isCluster = this.options.cluster !== undefined || (given !== null && isCluster(given))
    this.opened = this.open(given)
    // a failure to load ioredis is reported by `open()` to whoever awaits it (the rooms plugin at register)
    this.opened.catch(() => {})
  }

  get closed (): boolean {
    return this.closedFlag
  }

  private async open (given: RedisClient | null): Promise<void> {
    const ioredis = await loadIORedis()
    if (this.closedFlag) return
    const tuning = { commandTimeoutMs: this.options.commandTimeoutMs, maxBackoffMs: this.options.maxBackoffMs }
    let command: RedisClient
    if (given !== null) {
      command = given
    } else if (this.options.cluster !== undefined) {
      command = createRedisCluster(ioredis, this.options.cluster, { ...tuning, connectionName: `gw-bus-${this.busId}` },
        { ...(this.options.clusterOptions ?? {}) })
    } else {
      // no auto-pipelining: commands written while the socket is busy already leave together, and turning it on
      // showed no gain per publish in bench/redis-scale.ts (BENCH_AUTOPIPELINE=1; docs/benchmarks.md)
      command = createRedisClient(ioredis, this.options.redis as RedisConnection, { ...tuning, connectionName: `gw-bus-${this.busId}` })
    }
    command.defineCommand('gwPublish', { lua: PUBLISH, numberOfKeys: 2 })
    command.defineCommand('gwHistory', { lua: HISTORY, numberOfKeys: 2 })
    command.defineCommand('gwPosition', { lua: POSITION, numberOfKeys: 2 })
    command.defineCommand('gwPresenceWrite', { lua: PRESENCE_WRITE, numberOfKeys: 1 })
    command.defineCommand('gwPresenceTouch', { lua: PRESENCE_TOUCH, numberOfKeys: 1 })
    command.defineCommand('gwPresenceRead', { lua: PRESENCE_READ, numberOfKeys: 1 })
    command.defineCommand('gwLive', { lua: LIVE, numberOfKeys: 1 })
    this.command = command as RedisClient & Scripts
    const subscriberOf = (nodeKey: string | null): Redis => {
      const extra = { autoResubscribe: false, connectionName: `gw-sub-${this.busId}` }
      if (nodeKey !== null) {
        // a shard's subscriber: the cluster's own connection options (password, tls), to that node
        const { redisOptions } = (command as Cluster).options
        return new ioredis.Redis({ ...failFastOptions(tuning), ...(redisOptions ?? {}), ...extra, ...parseSeed(nodeKey) })
      }
      // the one server: a second connection like the command one (a given client is duplicated)
      if (given !== null) return (given as Redis).duplicate({ ...failFastOptions(tuning), ...extra })
      return createRedisClient(ioredis, this.options.redis as RedisConnection, tuning, extra)
    }
    this.subscriptions = new Subscriptions({
      connect: subscriberOf,
      ...(this.isCluster ? { cluster: command as Cluster } : {}),
      events: {
        confirmed: (channels) => { this.onConfirmed(channels) },
        lost: (connection, err) => { this.onSubscriberLost(connection, err) }
      }
    })
    command.on('ready', () => { this.onCommandReady() })
    command.on('close', () => { this.onCommandLost() })
    command.on('error', (err: Error) => { this.onCommandLost(err) })
    if (command.status === 'ready') this.onCommandReady()
    this.heartbeat = setInterval(() => { void this.beat() }, this.heartbeatMs)
    this.heartbeat.unref()
  }

  /** confirmed-subscription listeners by channel kind (the broker's rooms, the control's own channels) */
  readonly onSubscribed: Array<(channels: readonly string[]) => void> = []

  private onConfirmed (channels: readonly string[]): void {
    for (const listener of this.onSubscribed) listener(channels)
    this.notifyReady()
  }

  private lostLogged = new Set<string>()
  private onSubscriberLost (connection: string, err?: Error): void {
    if (this.closedFlag || this.lostLogged.has(connection)) return
    this.lostLogged.add(connection)
    this.log?.warn({ ...(err === undefined ? {} : { err }), bus: this.busId, connection: `subscriber ${connection}` },
      'redis bus: subscriber connection lost; its subscriptions are restored when it is back')
  }

  /** The command client, or GW_BUS_UNAVAILABLE when it cannot take a command now. */
  client (): RedisClient & Scripts {
    const command = this.command
    if (this.closedFlag) throw new GatewayErrors.BUS_UNAVAILABLE('the bus is closed')
    if (command === null) throw new GatewayErrors.BUS_UNAVAILABLE('redis is not connected (loading)')
    if (command.status !== 'ready') throw new GatewayErrors.BUS_UNAVAILABLE(`redis is not connected (${command.status})`)
    return command
  }

  /** Runs a command, turning its failure (or no connection) into a rejection with GW_BUS_UNAVAILABLE. */
  async run<T> (command: (client: RedisClient & Scripts) => Promise<T>): Promise<T> {
    const client = this.client()
    try {
      return await command(client)
    } catch (err) {
      throw new GatewayErrors.BUS_UNAVAILABLE((err as Error).message, { cause: err })
    }
  }

  /** A publish reached Redis: if one had failed, the bus is ready again. */
  publishWorked (): void {
    if (!this.publishFailed) return
    this.publishFailed = false
    this.log?.info({ bus: this.busId }, 'redis bus: publishing works again')
  }

  /** A publish failed in Redis: not ready until one succeeds or the next heartbeat does. */
  publishFailure (err: unknown): Error {
    if (!this.publishFailed && !this.closedFlag) {
      this.publishFailed = true
      this.log?.warn({ err, bus: this.busId }, 'redis bus: a publish failed; not ready until one succeeds or the next heartbeat does')
    }
    return new GatewayErrors.BUS_UNAVAILABLE((err as Error).message, { cause: err })
  }

  /**
   * What does not work now, for `/ready`: `redis` (not connected, or the last publish or heartbeat failed),
   * `redis:subscriptions` (a room or control channel has not been (re)subscribed within the command timeout),
   * `redis:slots` (a cluster master did not answer the heartbeat, or a slot has no master).
   */
  failing (): string[] {
    if (this.closedFlag) return ['redis']
    const command = this.command
    if (command === null || command.status !== 'ready' || this.publishFailed || this.heartbeatFailed) return ['redis']
    const out: string[] = []
    if ((this.subscriptions?.waitingMs() ?? 0) > this.options.commandTimeoutMs) out.push('redis:subscriptions')
    if (this.isCluster && (this.mastersFailing || !allSlotsServed(command as Cluster))) out.push('redis:slots')
    return out
  }

  /** Resolves once the command connection is ready and every wanted channel is subscribed; rejects after `timeoutMs`. */
  async waitReady (timeoutMs = 5000): Promise<void> {
    await Promise.race([this.opened, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())])
    const ready = () => this.command?.status === 'ready' && this.subscriptions?.pending === 0 && this.failing().length === 0
    if (ready()) return
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!ready()) return
        clearTimeout(timer)
        clearInterval(poll)
        this.readyWaiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        clearInterval(poll)
        this.readyWaiters.delete(check)
        reject(new GatewayErrors.BUS_UNAVAILABLE(`redis not ready within ${timeoutMs} ms (${this.failing().join(', ') || 'subscribing'})`))
      }, timeoutMs)
      const poll = setInterval(check, 25)
      this.readyWaiters.add(check)
    })
  }

  private notifyReady (): void {
    for (const wake of [...this.readyWaiters]) wake()
  }

  private onCommandReady (): void {
    if (this.commandDown) this.log?.info({ bus: this.busId }, 'redis bus: reconnected')
    this.commandDown = false
    this.lostLogged.clear()
    void this.beat()
    this.notifyReady()
  }

  private onCommandLost (err?: Error): void {
    this.listedSince = null
    if (this.closedFlag || this.commandDown) return
    this.commandDown = true
    this.log?.warn({ ...(err === undefined ? {} : { err }), bus: this.busId, connection: 'command' }, 'redis bus: connection lost; reconnecting with backoff')
  }

  /**
   * The heartbeat: lists this instance as alive, lets every part renew (or, after a loss, rewrite) what it keeps in
   * Redis, and on a cluster pings every master. Any failure makes the bus unready until a heartbeat succeeds.
   */
  async beat (): Promise<void> {
    if (this.beating || this.closing || this.command === null || this.command.status !== 'ready') return
    this.beating = true
    try {
      const command = this.command
      const live = await command.gwLive(this.keys.live, this.options.presenceTtlMs, this.instance ?? '')
      if (this.closing) return
      const lost = live[0] === 1 || this.listedSince === null
      if (this.instance !== null && lost) this.listedSince = Date.now()
      await Promise.all(this.parts.map(async (part) => { await part.beat(live[0] === 1) }))
      if (this.isCluster) {
        const masters = (command as Cluster).nodes('master')
        const pings = await Promise.allSettled(masters.map(async (node) => await node.ping()))
        const failing = pings.some((p) => p.status === 'rejected')
        if (failing !== this.mastersFailing) {
          this.mastersFailing = failing
          if (failing) this.log?.warn({ bus: this.busId }, 'redis bus: a cluster master does not answer')
          else this.log?.info({ bus: this.busId }, 'redis bus: every cluster master answers again')
        }
      }
      if (this.heartbeatFailed) this.log?.info({ bus: this.busId }, 'redis bus: heartbeat works again')
      this.heartbeatFailed = false
      this.publishFailed = false
      this.notifyReady()
    } catch (err) {
      if (!this.heartbeatFailed && !this.closedFlag) this.log?.warn({ err, bus: this.busId }, 'redis bus: heartbeat failed; not ready until one succeeds')
      this.heartbeatFailed = true
    } finally {
      this.beating = false
    }
  }

  /** Ends the heartbeat: the parts may then remove what they keep in Redis without a beat writing it again. */
  stopHeartbeat (): void {
    this.closing = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
  }

  /** Ends the heartbeat and the subscriptions; commands are refused from now on. */
  stop (): void {
    this.stopHeartbeat()
    this.closedFlag = true
    this.subscriptions?.close()
  }

  async closeConnections (): Promise<void> {
    await this.opened.catch(() => {})
    this.subscriptions?.close()
    if (this.command !== null && this.owned) await closeClient(this.command)
  }

  /** Drops the connections at once, leaving everything in Redis as it is: what a crashed instance leaves behind. */
  destroy (): void {
    this.stop()
    if (this.command !== null && this.owned) this.command.disconnect()
  }
}

/** true when every slot of the cluster's map has a master */
function allSlotsServed (cluster: Cluster): boolean {
  const slots = cluster.slots
  if (slots.length < 16384) return false
  for (let i = 0; i < 16384; i++) if (slots[i]?.[0] === undefined) return false
  return true
}
