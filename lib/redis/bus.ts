import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { z } from 'zod'
import type { Bus, BusSink } from '../rooms/bus.js'
import { createEvent, encodeData } from '../rooms/event.js'
import { formatId, newEpoch, parseId } from '../rooms/ids.js'
import type { HistoryResult, Member, Presence, PublishInput, RoomEvent, RoomSummary } from '../rooms/types.js'
import { GatewayErrors } from '../errors.js'
import { parseOptions } from '../options.js'
import { closeClient, createRedisClient, type RedisConnection } from './client.js'
import { APPEND, BEAT, HISTORY, LIST, PRESENCE } from './scripts.js'

/** The part of a pino logger the bus uses (app.log fits). */
export interface BusLogger {
  warn (obj: object, msg: string): void
  info (obj: object, msg: string): void
}

const RedisBusOptionsSchema = z.strictObject({
  /** a redis:// or rediss:// URL, or ioredis options */
  redis: z.union([
    z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL' }),
    z.record(z.string(), z.unknown())
  ]),
  /** first part of every key and channel; instances that should act as one share it (not `prefix`: Fastify's) */
  keyPrefix: z.string().regex(/^[A-Za-z0-9_.:{}-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:{}-' }).default('gw'),
  /** events kept per room for resume */
  historySize: z.number().int().min(0).max(100_000).default(100),
  /** a room's history expires this long after its last publish */
  historyTtlMs: z.number().int().min(1000).default(24 * 3600 * 1000),
  /** a crashed instance's members disappear from presence this long after its last heartbeat */
  presenceTtlMs: z.number().int().min(300).default(15_000),
  /** heartbeat interval; default a third of presenceTtlMs */
  heartbeatMs: z.number().int().min(50).optional(),
  /** how long `direct` waits for the target instance's answer */
  directTimeoutMs: z.number().int().min(10).default(2000),
  /** a Redis command without a reply after this long fails (publish rejects) */
  commandTimeoutMs: z.number().int().min(50).default(2000),
  /** reconnect backoff cap */
  maxBackoffMs: z.number().int().min(10).default(2000),
  /** this instance's id in presence and messages; default random */
  instanceId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).optional(),
  log: z.custom<BusLogger>((v) => typeof (v as BusLogger)?.warn === 'function' && typeof (v as BusLogger)?.info === 'function', {
    message: 'must be a logger with warn and info (app.log)'
  }).optional()
}).refine((o) => o.heartbeatMs === undefined || o.heartbeatMs < o.presenceTtlMs, {
  message: 'heartbeatMs must be shorter than presenceTtlMs', path: ['heartbeatMs']
})

export type RedisBusOptions = z.input<typeof RedisBusOptionsSchema>

interface Scripts {
  gwAppend (...args: Array<string | number>): Promise<[0, string] | [1, string, number, number]>
  gwHistory (...args: Array<string | number>): Promise<[2] | [0, string] | [1, 0 | 1, StreamEntry[]]>
  gwBeat (...args: Array<string | number>): Promise<number>
  gwPresence (...args: Array<string | number>): Promise<string[][]>
  gwList (...args: Array<string | number>): Promise<string[][]>
  gwLive (...args: Array<string | number>): Promise<string[]>
}

type StreamEntry = [string, string[]]

/**
 * KEYS: live. ARGV: ttl ms, a member prefix or ''. Lists the prefix as alive now (server time, so clocks of the
 * instances need not agree), forgets prefixes not listed within the last ttl, and returns the remaining ones.
 * A list of its own because BEAT's `instances` holds bus ids, and member ids carry the registry's prefix instead.
 */
const LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - ttl))
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl * 4))
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
`

interface PendingAppend {
  readonly input: PublishInput
  readonly dataJson: string
  readonly resolve: (event: RoomEvent) => void
  readonly reject: (err: Error) => void
  token: string
  done: boolean
  /** the script's answer, kept until the echo on the subscription arrives */
  replied?: { epoch: string, seq: number, time: number }
  timer?: NodeJS.Timeout
}

/** One event message as it arrives on the events channel, waiting for its turn. */
interface Incoming {
  origin: string
  token: string
  epoch: string
  seq: number
  time: number
  room: string
  event: string
  dataJson: string
}

/**
 * The bus of a deployment of several instances, on Redis.
 *
 * - `append` runs one Lua script: the next id from a global counter under an epoch stored in Redis, the event
 *   appended to the room's bounded stream (history, with a TTL), and one PUBLISH on the single events channel.
 *   Every instance has one subscriber connection for that channel plus its own direct and reply channels.
 * - Order: the publishing instance hands its own event to the registry when the event's echo arrives on the
 *   subscription, so local members see own and remote events in the one order Redis gave them (an SSE stream that
 *   merges rooms sees strictly increasing ids). Remote events for rooms without local members are skipped unparsed.
 * - Presence: per instance and room a hash of member id → user, and per instance a hash room → count, all expiring
 *   `presenceTtlMs` after the last heartbeat, and a sorted set of live instances; a crashed instance fades out.
 * - Liveness: the heartbeat also lists the registry's member-id prefix in `<prefix>:live` (scored by Redis time), so
 *   `liveInstances()` tells which instances' members (rtc peers) still exist; an instance that misses heartbeats
 *   for `presenceTtlMs` counts as crashed, exactly as for presence.
 * - Failure: no offline queue, so while Redis is unreachable `append` rejects at once with GW_BUS_UNAVAILABLE and
 *   `isReady()` is false; the clients reconnect with backoff, the subscription and presence are restored.
 */
export class RedisBus implements Bus {
  readonly name = 'redis'
  /** this instance's id (presence, message origin) */
  readonly id: string
  readonly prefix: string
  readonly historySize: number
  /** the command connection (scripts, presence writes) */
  readonly command: Redis
  /** the one subscriber connection */
  readonly subscriber: Redis
  /** counters for monitoring and the benchmark */
  readonly stats = { published: 0, received: 0, delivered: 0, missed: 0 }

  private readonly historyTtlMs: number
  private readonly presenceTtlMs: number
  private readonly heartbeatMs: number
  private readonly directTimeoutMs: number
  private readonly echoTimeoutMs: number
  private readonly tickMs: number
  private readonly marginMs: number
  private readonly log: BusLogger | undefined
  private readonly scripts: Scripts
  private readonly keys: { clock: string, instances: string, live: string, counts: string, events: string, reply: string }

  private sink: BusSink | null = null
  private epoch = ''
  private candidate = newEpoch()
  private closed = false
  private subscribed = false
  private commandDown = false
  private subscriberDown = false
  private directChannel: string | null = null
  /** the registry's member-id prefix (from `attach`, else the first member) */
  private memberPrefix: string | null = null
  /** since when this instance has been listed without a break (null: not connected, or not listed yet) */
  private listedSince: number | null = null

  private tokenSeq = 0
  private readonly pendingAppends = new Map<string, PendingAppend>()
  private readonly queue: Incoming[] = []
  private queueHead = 0
  private yielding = false
  private lastEpochSeen = ''
  private lastSeqSeen = 0

  private readonly local = new Map<string, Map<string, string>>()
  private readonly staleRooms = new Set<string>()
  private presenceDirty = true
  private beating = false
  private readonly heartbeat: NodeJS.Timeout

  private directSeq = 0
  private readonly pendingDirect = new Map<string, { resolve: (ok: boolean) => void, timer: NodeJS.Timeout }>()
  private readonly readyWaiters = new Set<() => void>()

  constructor (raw: RedisBusOptions) {
    const options = parseOptions('fastify-gateways/redis-bus', RedisBusOptionsSchema, raw)
    this.id = options.instanceId ?? randomBytes(6).toString('hex')
    this.prefix = options.keyPrefix
    this.historySize = options.historySize
    this.historyTtlMs = options.historyTtlMs
    this.presenceTtlMs = options.presenceTtlMs
    this.heartbeatMs = options.heartbeatMs ?? Math.floor(options.presenceTtlMs / 3)
    this.directTimeoutMs = options.directTimeoutMs
    this.echoTimeoutMs = options.commandTimeoutMs
    this.tickMs = Math.min(Math.max(Math.floor(options.historyTtlMs / 20), 100), 60_000)
    this.marginMs = Math.min(1000, Math.floor(options.historyTtlMs / 4))
    this.log = options.log
    const p = this.prefix
    this.keys = {
      clock: `${p}:clock`,
      instances: `${p}:instances`,
      live: `${p}:live`,
      counts: `${p}:pc:${this.id}`,
      events: `${p}:events`,
      reply: `${p}:reply:${this.id}`
    }
    const tuning = { commandTimeoutMs: options.commandTimeoutMs, maxBackoffMs: options.maxBackoffMs }
    const connection = options.redis as RedisConnection
    this.command = createRedisClient(connection, { ...tuning, connectionName: `gw-bus-${this.id}` })
    // the bus subscribes itself on every (re)connect, so it knows when the subscription is back
    this.subscriber = createRedisClient(connection, { ...tuning, connectionName: `gw-sub-${this.id}` }, { autoResubscribe: false })
    this.command.defineCommand('gwAppend', { lua: APPEND, numberOfKeys: 3 })
    this.command.defineCommand('gwHistory', { lua: HISTORY, numberOfKeys: 3 })
    this.command.defineCommand('gwBeat', { lua: BEAT, numberOfKeys: 1 })
    this.command.defineCommand('gwPresence', { lua: PRESENCE, numberOfKeys: 1 })
    this.command.defineCommand('gwList', { lua: LIST, numberOfKeys: 1 })
    this.command.defineCommand('gwLive', { lua: LIVE, numberOfKeys: 1 })
    this.scripts = this.command as unknown as Scripts

    this.command.on('ready', () => { this.onCommandReady() })
    this.command.on('close', () => {
      this.presenceDirty = true
      this.listedSince = null
      this.onConnectionLost('command')
    })
    this.command.on('error', (err) => { this.onConnectionLost('command', err) })
    this.subscriber.on('ready', () => { this.subscribe() })
    this.subscriber.on('close', () => {
      this.onSubscriberClosed()
      this.onConnectionLost('subscriber')
    })
    this.subscriber.on('error', (err) => { this.onConnectionLost('subscriber', err) })
    this.subscriber.on('message', (channel: string, message: string) => { this.onMessage(channel, message) })

    this.heartbeat = setInterval(() => { void this.beat() }, this.heartbeatMs)
    this.heartbeat.unref()
  }

  attach (sink: BusSink): void {
    this.sink = sink
    if (sink.memberPrefix !== undefined) this.usePrefix(sink.memberPrefix)
  }

  /** A crashed instance leaves `liveInstances()` this long after its last heartbeat. */
  get instanceTtlMs (): number {
    return this.presenceTtlMs
  }

  /** True while both connections are up and the subscription is in place. */
  isReady (): boolean {
    return !this.closed && this.subscribed && this.command.status === 'ready'
  }

  /** Resolves once `isReady()`; rejects after `timeoutMs` (the bus keeps connecting in the background). */
  async waitReady (timeoutMs = 5000): Promise<void> {
    if (this.isReady()) return
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer)
        this.readyWaiters.delete(done)
        resolve()
      }
      const timer = setTimeout(() => {
        this.readyWaiters.delete(done)
        reject(new GatewayErrors.BUS_UNAVAILABLE(`redis not ready within ${timeoutMs} ms`))
      }, timeoutMs)
      this.readyWaiters.add(done)
    })
  }

  // ---- publish -------------------------------------------------------------------------------------------------

  append (input: PublishInput): Promise<RoomEvent> {
    if (this.closed) return Promise.reject(new GatewayErrors.BUS_UNAVAILABLE('the bus is closed'))
    let dataJson: string
    try {
      dataJson = encodeData(input.data)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.command.status !== 'ready') {
      return Promise.reject(new GatewayErrors.BUS_UNAVAILABLE(`redis is not connected (${this.command.status})`))
    }
    return new Promise<RoomEvent>((resolve, reject) => {
      this.send({ input, dataJson, resolve, reject, token: '', done: false }, 0)
    })
  }

  private send (pending: PendingAppend, attempt: number): void {
    const token = (++this.tokenSeq).toString(36)
    pending.token = token
    this.pendingAppends.set(token, pending)
    const epoch = this.epoch
    const { room, event } = pending.input
    this.scripts.gwAppend(
      this.keys.clock, this.streamKey(epoch, room), this.ticksKey(epoch),
      epoch, this.candidate, this.historySize, this.historyTtlMs, this.tickMs, this.marginMs,
      this.keys.events, this.id, token, room, event, pending.dataJson
    ).then((reply) => {
      if (reply[0] === 0) {
        this.pendingAppends.delete(token)
        this.adoptEpoch(reply[1])
        if (attempt >= 2) this.settle(pending, new GatewayErrors.BUS_UNAVAILABLE('the id epoch keeps changing'))
        else this.send(pending, attempt + 1)
        return
      }
      this.stats.published++
      if (pending.done) return
      pending.replied = { epoch: reply[1], seq: Number(reply[2]), time: Number(reply[3]) }
      if (!this.subscribed) {
        // no echo will come: hand it over now (order with remote events is not guaranteed while unsubscribed)
        this.settleFromReply(pending)
      } else {
        pending.timer = setTimeout(() => { this.settleFromReply(pending) }, this.echoTimeoutMs)
        pending.timer.unref()
      }
    }, (err: Error) => {
      this.settle(pending, new GatewayErrors.BUS_UNAVAILABLE(err.message, { cause: err }))
    })
  }

  private settleFromReply (pending: PendingAppend): void {
    const r = pending.replied
    if (r === undefined || pending.done) return
    this.settle(pending, createEvent(formatId(r.epoch, r.seq), r.seq, pending.input, r.time, pending.dataJson))
  }

  private settle (pending: PendingAppend, outcome: RoomEvent | Error): void {
    if (pending.done) return
    pending.done = true
    this.pendingAppends.delete(pending.token)
    if (pending.timer !== undefined) clearTimeout(pending.timer)
    if (outcome instanceof Error) pending.reject(outcome)
    else pending.resolve(outcome)
  }

  private adoptEpoch (epoch: string): void {
    this.epoch = epoch
    if (epoch === this.candidate) this.candidate = newEpoch()
  }

  // ---- history -------------------------------------------------------------------------------------------------

  async history (room: string, sinceId: string): Promise<HistoryResult> {
    if (this.closed || this.command.status !== 'ready') {
      throw new GatewayErrors.BUS_UNAVAILABLE(`redis is not connected (${this.closed ? 'closed' : this.command.status})`)
    }
    const since = parseId(sinceId)
    for (let attempt = 0; attempt < 3; attempt++) {
      const epoch = this.epoch
      let reply: Awaited<ReturnType<Scripts['gwHistory']>>
      try {
        reply = await this.scripts.gwHistory(
          this.keys.clock, this.streamKey(epoch, room), this.ticksKey(epoch),
          epoch, since?.epoch ?? '', since?.seq ?? 0, this.historyTtlMs, this.marginMs
        )
      } catch (err) {
        throw new GatewayErrors.BUS_UNAVAILABLE((err as Error).message, { cause: err })
      }
      if (reply[0] === 2) return { events: [], recovered: false }
      if (reply[0] === 0) {
        this.adoptEpoch(reply[1])
        continue
      }
      return { events: reply[2].map((entry) => this.fromEntry(epoch, room, entry)), recovered: reply[1] === 1 }
    }
    throw new GatewayErrors.BUS_UNAVAILABLE('the id epoch keeps changing')
  }

  private fromEntry (epoch: string, room: string, [id, fields]: StreamEntry): RoomEvent {
    let event = ''
    let dataJson = 'null'
    let time = 0
    for (let i = 0; i < fields.length; i += 2) {
      const value = fields[i + 1]
      switch (fields[i]) {
        case 'e': event = value; break
        case 'd': dataJson = value; break
        case 't': time = Number(value); break
      }
    }
    const seq = Number(id.slice(0, id.indexOf('-')))
    return createEvent(formatId(epoch, seq), seq, { room, event, data: JSON.parse(dataJson) }, time, dataJson)
  }

  // ---- the subscription ----------------------------------------------------------------------------------------

  private subscribe (): void {
    const channels = [this.keys.events, this.keys.reply]
    if (this.directChannel !== null) channels.push(this.directChannel)
    this.subscriber.subscribe(...channels).then(() => {
      if (this.subscriber.status !== 'ready' || this.closed) return
      this.subscribed = true
      if (this.subscriberDown) this.log?.info({ bus: this.id }, 'redis bus: subscription restored')
      this.subscriberDown = false
      this.notifyReady()
    }, (err: Error) => {
      this.log?.warn({ err, bus: this.id }, 'redis bus: subscribe failed')
    })
  }

  private onSubscriberClosed (): void {
    this.subscribed = false
    // echoes of appends Redis already answered will not come on this connection
    for (const pending of [...this.pendingAppends.values()]) this.settleFromReply(pending)
  }

  private onMessage (channel: string, message: string): void {
    if (channel === this.keys.events) this.onEvent(message)
    else if (channel === this.keys.reply) this.onDirectReply(message)
    else if (channel === this.directChannel) this.onDirectRequest(message)
  }

  private onEvent (message: string): void {
    // origin \n token \n epoch \n seq \n time \n room \n event \n data
    const parts: string[] = []
    let start = 0
    for (let i = 0; i < 7; i++) {
      const end = message.indexOf('\n', start)
      if (end === -1) return
      parts.push(message.slice(start, end))
      start = end + 1
    }
    const seq = Number(parts[3])
    this.stats.received++
    this.trackSeq(parts[2], seq)
    this.queue.push({
      origin: parts[0], token: parts[1], epoch: parts[2], seq, time: Number(parts[4]),
      room: parts[5], event: parts[6], dataJson: message.slice(start)
    })
    this.drain()
  }

  /**
   * Hands queued events over in channel order. An own event is handed to the registry by resolving its `append`;
   * the registry delivers it in a promise continuation, so after resolving one the next remote event waits for a
   * turn of the event loop (own events keep resolving meanwhile: their continuations run in order).
   */
  private drain (): void {
    const queue = this.queue
    while (this.queueHead < queue.length) {
      const item = queue[this.queueHead]
      if (item.origin === this.id) {
        this.queueHead++
        const pending = this.pendingAppends.get(item.token)
        if (pending !== undefined && !pending.done) {
          this.settle(pending, createEvent(formatId(item.epoch, item.seq), item.seq, pending.input, item.time, pending.dataJson))
          this.yieldTurn()
        }
        continue
      }
      if (this.yielding) return
      this.queueHead++
      this.deliverRemote(item)
    }
    queue.length = 0
    this.queueHead = 0
  }

  private yieldTurn (): void {
    if (this.yielding) return
    this.yielding = true
    setImmediate(() => {
      this.yielding = false
      this.drain()
    })
  }

  private deliverRemote (item: Incoming): void {
    if (this.sink === null || !this.local.has(item.room)) return
    let data: unknown
    try {
      data = JSON.parse(item.dataJson)
    } catch {
      return
    }
    const event = createEvent(formatId(item.epoch, item.seq), item.seq, { room: item.room, event: item.event, data }, item.time, item.dataJson)
    this.stats.delivered++
    this.sink.deliver(event)
  }

  /** Ids are consecutive on the events channel: a jump means this instance missed live events (subscription lost). */
  private trackSeq (epoch: string, seq: number): void {
    if (epoch === this.lastEpochSeen && seq > this.lastSeqSeen + 1) {
      const missed = seq - this.lastSeqSeen - 1
      this.stats.missed += missed
      this.log?.warn({ bus: this.id, missed, from: this.lastSeqSeen + 1, to: seq - 1 }, 'redis bus: live events missed while the subscription was down; clients recover them by resuming')
    }
    if (epoch !== this.lastEpochSeen || seq > this.lastSeqSeen) {
      this.lastEpochSeen = epoch
      this.lastSeqSeen = seq
    }
  }

  // ---- direct messages -----------------------------------------------------------------------------------------

  async direct (to: string, message: unknown): Promise<boolean> {
    const dot = to.indexOf('.')
    if (dot <= 0 || this.closed || this.command.status !== 'ready') return false
    let json: string
    try {
      json = JSON.stringify(message ?? null)
    } catch {
      return false
    }
    const requestId = (++this.directSeq).toString(36)
    const answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingDirect.delete(requestId)
        resolve(false)
      }, this.directTimeoutMs)
      timer.unref()
      this.pendingDirect.set(requestId, { resolve, timer })
    })
    let receivers = 0
    try {
      receivers = await this.command.publish(`${this.prefix}:direct:${to.slice(0, dot)}`, `${requestId}\n${this.id}\n${to}\n${json}`)
    } catch (err) {
      this.log?.warn({ err, bus: this.id }, 'redis bus: direct message not sent')
    }
    if (receivers === 0) this.answerDirect(requestId, false)
    return await answer
  }

  private answerDirect (requestId: string, ok: boolean): void {
    const pending = this.pendingDirect.get(requestId)
    if (pending === undefined) return
    this.pendingDirect.delete(requestId)
    clearTimeout(pending.timer)
    pending.resolve(ok)
  }

  private onDirectRequest (message: string): void {
    const a = message.indexOf('\n')
    const b = message.indexOf('\n', a + 1)
    const c = message.indexOf('\n', b + 1)
    if (a === -1 || b === -1 || c === -1) return
    const requestId = message.slice(0, a)
    const from = message.slice(a + 1, b)
    const to = message.slice(b + 1, c)
    let ok = false
    try {
      ok = this.sink?.direct(to, JSON.parse(message.slice(c + 1))) ?? false
    } catch (err) {
      this.log?.warn({ err, bus: this.id }, 'redis bus: direct message delivery failed')
    }
    this.command.publish(`${this.prefix}:reply:${from}`, `${requestId}\n${ok ? 1 : 0}`).catch(() => {})
  }

  private onDirectReply (message: string): void {
    const a = message.indexOf('\n')
    if (a === -1) return
    this.answerDirect(message.slice(0, a), message.slice(a + 1) === '1')
  }

  /** The registry names its members `<instance>.<n>`; direct messages for them arrive on that prefix's channel. */
  private learnPrefix (memberId: string): void {
    if (this.memberPrefix !== null) return
    const dot = memberId.indexOf('.')
    if (dot > 0) this.usePrefix(memberId.slice(0, dot))
  }

  private usePrefix (memberPrefix: string): void {
    if (this.memberPrefix !== null) return
    this.memberPrefix = memberPrefix
    this.directChannel = `${this.prefix}:direct:${memberPrefix}`
    if (this.command.status === 'ready' && !this.closed) {
      // listed before anything this member does goes out on this connection (others judge its peers by the list)
      this.scripts.gwLive(this.keys.live, this.presenceTtlMs, memberPrefix).catch(() => {})
    }
    if (this.subscriber.status === 'ready') {
      this.subscriber.subscribe(this.directChannel).catch((err: Error) => {
        this.log?.warn({ err, bus: this.id }, 'redis bus: subscribe failed')
      })
    }
  }

  // ---- liveness ------------------------------------------------------------------------------------------------

  /**
   * Member-id prefixes of the instances with a heartbeat within `presenceTtlMs`, this one included. null until this
   * instance has itself been listed for a whole `presenceTtlMs` since it (re)connected or found itself unlisted
   * (Redis restarted or flushed): before that, a live instance may simply not have beaten again yet.
   */
  async liveInstances (): Promise<ReadonlySet<string> | null> {
    const own = this.memberPrefix
    const since = this.listedSince
    if (this.closed || this.command.status !== 'ready' || own === null || since === null || Date.now() - since < this.presenceTtlMs) return null
    let live: string[]
    try {
      live = await this.scripts.gwLive(this.keys.live, this.presenceTtlMs, '')
    } catch {
      return null
    }
    // not even this instance listed: the list was lost (flush) after its last beat and cannot be trusted yet
    if (!live.includes(own) || this.listedSince !== since) return null
    return new Set(live)
  }

  // ---- presence ------------------------------------------------------------------------------------------------

  memberJoined (room: string, member: Member): void {
    this.learnPrefix(member.id)
    let members = this.local.get(room)
    if (members === undefined) {
      members = new Map()
      this.local.set(room, members)
    }
    const marker = member.user === null ? '-' : `u${member.user}`
    members.set(member.id, marker)
    const key = this.membersKey(room)
    const count = members.size
    this.writePresence(room, (pipe) => pipe
      .hset(key, member.id, marker).pexpire(key, this.presenceTtlMs)
      .hset(this.keys.counts, room, count).pexpire(this.keys.counts, this.presenceTtlMs))
  }

  memberLeft (room: string, member: Member): void {
    const members = this.local.get(room)
    if (members === undefined || !members.delete(member.id)) return
    const key = this.membersKey(room)
    if (members.size === 0) {
      this.local.delete(room)
      this.writePresence(room, (pipe) => pipe.del(key).hdel(this.keys.counts, room))
    } else {
      const count = members.size
      this.writePresence(room, (pipe) => pipe.hdel(key, member.id).hset(this.keys.counts, room, count))
    }
  }

  async presence (room: string, here: Presence): Promise<Presence> {
    const others = await this.ask(() => this.scripts.gwPresence(this.keys.instances, this.prefix, room, this.presenceTtlMs, this.id))
    const users = new Set(here.users)
    let members = here.members
    for (const values of others) {
      members += values.length
      for (const value of values) if (value !== '-') users.add(value.slice(1))
    }
    return { members, users: [...users] }
  }

  async list (here: RoomSummary[]): Promise<RoomSummary[]> {
    const others = await this.ask(() => this.scripts.gwList(this.keys.instances, this.prefix, this.presenceTtlMs, this.id))
    const counts = new Map<string, number>()
    for (const { room, members } of here) counts.set(room, members)
    for (const flat of others) {
      for (let i = 0; i < flat.length; i += 2) {
        const n = Number(flat[i + 1])
        if (n > 0) counts.set(flat[i], (counts.get(flat[i]) ?? 0) + n)
      }
    }
    return [...counts].map(([room, members]) => ({ room, members }))
  }

  private async ask<T> (run: () => Promise<T>): Promise<T> {
    if (this.closed || this.command.status !== 'ready') {
      throw new GatewayErrors.BUS_UNAVAILABLE(`redis is not connected (${this.closed ? 'closed' : this.command.status})`)
    }
    try {
      return await run()
    } catch (err) {
      throw new GatewayErrors.BUS_UNAVAILABLE((err as Error).message, { cause: err })
    }
  }

  private writePresence (room: string, build: (pipe: ReturnType<Redis['pipeline']>) => unknown): void {
    if (this.closed) return
    if (this.command.status !== 'ready') {
      this.staleRooms.add(room)
      this.presenceDirty = true
      return
    }
    const pipe = this.command.pipeline()
    build(pipe)
    pipe.exec().then((results) => {
      if (results?.some(([err]) => err !== null) === true) throw new Error('presence write failed')
    }).catch(() => {
      this.staleRooms.add(room)
      this.presenceDirty = true
    })
  }

  /** Heartbeat: keeps this instance listed and its presence keys alive; rewrites them all after a loss. */
  private async beat (): Promise<void> {
    if (this.beating || this.closed || this.command.status !== 'ready') return
    this.beating = true
    try {
      const [added] = await Promise.all([
        this.scripts.gwBeat(this.keys.instances, this.id, this.presenceTtlMs),
        this.scripts.gwLive(this.keys.live, this.presenceTtlMs, this.memberPrefix ?? '')
      ])
      // closed meanwhile: close has removed this instance's keys, do not write them again
      if (this.closed) return
      if (this.command.status === 'ready' && (added === 1 || this.listedSince === null)) this.listedSince = Date.now()
      const pipe = this.command.pipeline()
      if (added === 1 || this.presenceDirty) {
        this.presenceDirty = false
        const stale = [...this.staleRooms]
        this.staleRooms.clear()
        for (const room of stale) if (!this.local.has(room)) pipe.del(this.membersKey(room))
        pipe.del(this.keys.counts)
        for (const [room, members] of this.local) {
          const key = this.membersKey(room)
          pipe.del(key)
          const flat: string[] = []
          for (const [id, marker] of members) {
            flat.push(id, marker)
            if (flat.length >= 2000) pipe.hset(key, ...flat.splice(0))
          }
          if (flat.length > 0) pipe.hset(key, ...flat)
          pipe.pexpire(key, this.presenceTtlMs)
          pipe.hset(this.keys.counts, room, members.size)
        }
      } else {
        for (const room of this.local.keys()) pipe.pexpire(this.membersKey(room), this.presenceTtlMs)
      }
      pipe.pexpire(this.keys.counts, this.presenceTtlMs)
      const results = await pipe.exec()
      if (results?.some(([err]) => err !== null) === true) this.presenceDirty = true
    } catch {
      this.presenceDirty = true
    } finally {
      this.beating = false
    }
  }

  // ---- connection state ----------------------------------------------------------------------------------------

  private onCommandReady (): void {
    if (this.commandDown) this.log?.info({ bus: this.id }, 'redis bus: reconnected')
    this.commandDown = false
    this.presenceDirty = true
    void this.beat()
    if (this.epoch === '') {
      this.command.hget(this.keys.clock, 'epoch').then((epoch) => {
        if (epoch !== null && this.epoch === '') this.epoch = epoch
      }, () => {})
    }
    this.notifyReady()
  }

  /** Logs the first sign of an outage (a close or an error) once; `ready` logs the recovery. */
  private onConnectionLost (which: 'command' | 'subscriber', err?: Error): void {
    if (this.closed) return
    const down = which === 'command' ? this.commandDown : this.subscriberDown
    if (down) return
    if (which === 'command') this.commandDown = true
    else this.subscriberDown = true
    this.log?.warn({ ...(err === undefined ? {} : { err }), bus: this.id, connection: which }, 'redis bus: connection lost; reconnecting with backoff')
  }

  private notifyReady (): void {
    if (!this.isReady()) return
    for (const wake of [...this.readyWaiters]) wake()
  }

  // ---- keys ------------------------------------------------------------------------------------------------------

  private streamKey (epoch: string, room: string): string {
    return `${this.prefix}:h:${epoch}:${room}`
  }

  private ticksKey (epoch: string): string {
    return `${this.prefix}:ticks:${epoch}`
  }

  private membersKey (room: string): string {
    return `${this.prefix}:pm:${this.id}:${room}`
  }

  // ---- shutdown --------------------------------------------------------------------------------------------------

  /** Removes this instance's presence, then closes both connections. */
  async close (): Promise<void> {
    if (this.closed) return
    this.stop()
    if (this.command.status === 'ready') {
      const pipe = this.command.pipeline().zrem(this.keys.instances, this.id).del(this.keys.counts)
      // the others drop this instance's rtc peers at once (those not announced as left by their connections' end)
      if (this.memberPrefix !== null) pipe.zrem(this.keys.live, this.memberPrefix)
      for (const room of this.local.keys()) pipe.del(this.membersKey(room))
      await pipe.exec().catch(() => {})
    }
    this.local.clear()
    await Promise.all([closeClient(this.subscriber), closeClient(this.command)])
  }

  /** Drops both connections at once without removing presence: what a crashed instance leaves behind. */
  destroy (): void {
    if (this.closed) return
    this.stop()
    this.subscriber.disconnect()
    this.command.disconnect()
  }

  private stop (): void {
    this.closed = true
    this.subscribed = false
    clearInterval(this.heartbeat)
    for (const pending of [...this.pendingAppends.values()]) {
      if (pending.replied !== undefined) this.settleFromReply(pending)
      else this.settle(pending, new GatewayErrors.BUS_UNAVAILABLE('the bus is closed'))
    }
    for (const id of [...this.pendingDirect.keys()]) this.answerDirect(id, false)
  }
}
