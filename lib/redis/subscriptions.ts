import type { Cluster, Redis } from 'ioredis'
import { keySlot } from './slot.js'

/** What the subscription manager reports. */
export interface SubscriptionEvents {
  /** these channels are subscribed (again): what is published to them from now on arrives */
  confirmed (channels: readonly string[]): void
  /** a subscriber connection is gone (its channels are restored when it or another is back) */
  lost (connection: string, err?: Error): void
}

export interface SubscriptionsOptions {
  /** a subscriber connection: to the one server, or to the cluster node `nodeKey` (`host:port`) */
  connect (nodeKey: string | null): Redis
  /** with a cluster: its slot map routes each channel to the master of its slot (sharded pub/sub) */
  cluster?: Cluster
  events: SubscriptionEvents
  /** at most this many channels per (S)SUBSCRIBE command */
  batch?: number
}

interface Conn {
  readonly key: string
  readonly redis: Redis
  /** wanted channels routed to this connection */
  readonly channels: Set<string>
}

interface ChannelState {
  readonly onMessage: (message: string) => void
  readonly slot: number
  conn: Conn | null
  confirmed: boolean
  sending: boolean
  /** since when it has not been confirmed (for readiness) */
  since: number
}

const STANDALONE = 'standalone'

/**
 * The subscriptions of one instance, per channel, batched and kept in place.
 *
 * `add`/`remove` only mark a channel; once per tick the changes go out as few commands as possible: one SUBSCRIBE
 * per batch on one Redis, or on a cluster one SSUBSCRIBE per slot on the connection to that slot's master (a shard
 * channel can only be subscribed on its shard, and one command may only name channels of one slot). Each
 * connection's channels are subscribed again whenever it (re)connects, and re-routed when the cluster's slot map
 * changes (failover, resharding, or Redis unsubscribing a moved slot's channels). `confirmed` tells when they are in
 * place, so whoever subscribed can catch up on what was published meanwhile.
 */
export class Subscriptions {
  readonly stats = { subscribeCommands: 0, unsubscribeCommands: 0, messages: 0 }
  private readonly wanted = new Map<string, ChannelState>()
  /** channels to unsubscribe, with the state they had (taken back by an `add` before they went) */
  private readonly dropping = new Map<string, ChannelState>()
  private readonly unconfirmed = new Set<string>()
  private readonly conns = new Map<string, Conn>()
  private readonly dirty = new Set<string>()
  private readonly batch: number
  private scheduled = false
  private closed = false
  private readonly onRefresh = () => { this.reroute() }

  constructor (private readonly options: SubscriptionsOptions) {
    this.batch = options.batch ?? 500
    options.cluster?.on('refresh', this.onRefresh)
    if (options.cluster === undefined) this.open(STANDALONE)
  }

  /** Wants `channel`; its messages go to `onMessage`. Nothing happens if it is wanted already. */
  add (channel: string, onMessage: (message: string) => void): void {
    if (this.closed || this.wanted.has(channel)) return
    const dropped = this.dropping.get(channel)
    if (dropped !== undefined) {
      // removed and wanted again before the change went out: nothing to send
      this.dropping.delete(channel)
      const state = { ...dropped, onMessage }
      this.wanted.set(channel, state)
      state.conn?.channels.add(channel)
      if (!state.confirmed) this.unconfirmed.add(channel)
      return
    }
    this.wanted.set(channel, {
      onMessage,
      slot: this.options.cluster === undefined ? 0 : keySlot(channel),
      conn: null,
      confirmed: false,
      sending: false,
      since: Date.now()
    })
    this.unconfirmed.add(channel)
    this.mark(channel)
  }

  remove (channel: string): void {
    const state = this.wanted.get(channel)
    if (state === undefined) return
    this.wanted.delete(channel)
    this.unconfirmed.delete(channel)
    state.conn?.channels.delete(channel)
    this.dropping.set(channel, state)
    this.mark(channel)
  }

  has (channel: string): boolean {
    return this.wanted.has(channel)
  }

  /** channels wanted now */
  get size (): number {
    return this.wanted.size
  }

  /** Whether `channel` is subscribed (confirmed) now. */
  confirmed (channel: string): boolean {
    return this.wanted.get(channel)?.confirmed === true
  }

  /** wanted channels not subscribed (confirmed) now */
  get pending (): number {
    return this.unconfirmed.size
  }

  /** How long the oldest wanted channel has been waiting to be (re)subscribed, ms; 0 when all are in place. */
  waitingMs (now = Date.now()): number {
    let oldest = now
    for (const channel of this.unconfirmed) {
      const since = this.wanted.get(channel)?.since ?? now
      if (since < oldest) oldest = since
    }
    return now - oldest
  }

  /** The subscriber connections (for tests and for monitoring). */
  connections (): Redis[] {
    return [...this.conns.values()].map((c) => c.redis)
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.options.cluster?.off('refresh', this.onRefresh)
    for (const conn of this.conns.values()) conn.redis.disconnect()
    this.conns.clear()
    this.wanted.clear()
    this.dropping.clear()
    this.unconfirmed.clear()
  }

  private mark (channel: string): void {
    this.dirty.add(channel)
    if (this.scheduled) return
    this.scheduled = true
    // every join and leave of this tick (and the next few microtasks) go out together
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush (): void {
    if (this.closed) return
    const subscribe = new Map<Conn, Map<number, string[]>>()
    const unsubscribe = new Map<Conn, Map<number, string[]>>()
    const add = (into: Map<Conn, Map<number, string[]>>, conn: Conn, slot: number, channel: string) => {
      let bySlot = into.get(conn)
      if (bySlot === undefined) into.set(conn, bySlot = new Map())
      let list = bySlot.get(slot)
      if (list === undefined) bySlot.set(slot, list = [])
      list.push(channel)
    }
    for (const channel of this.dirty) {
      const state = this.wanted.get(channel)
      const dropped = this.dropping.get(channel)
      if (dropped !== undefined) {
        this.dropping.delete(channel)
        // subscribed, or on its way: unsubscribe (commands on one connection go in order)
        const conn = dropped.conn
        if (conn !== null && (dropped.confirmed || dropped.sending) && conn.redis.status === 'ready') add(unsubscribe, conn, dropped.slot, channel)
      }
      if (state === undefined) continue
      const target = this.route(state.slot)
      if (state.conn !== null && state.conn !== target) {
        // the slot moved to another master: leave the old shard (if it still listens) and join the new one
        state.conn.channels.delete(channel)
        if (state.conn.redis.status === 'ready') add(unsubscribe, state.conn, state.slot, channel)
        state.conn = null
        this.unconfirm(channel, state)
      }
      if (target === null) continue
      state.conn = target
      target.channels.add(channel)
      if (!state.confirmed && !state.sending && target.redis.status === 'ready') {
        state.sending = true
        add(subscribe, target, state.slot, channel)
      }
    }
    this.dirty.clear()
    for (const [conn, bySlot] of unsubscribe) {
      for (const channels of bySlot.values()) {
        for (let i = 0; i < channels.length; i += this.batch) {
          const chunk = channels.slice(i, i + this.batch)
          this.stats.unsubscribeCommands++
          const sent = this.options.cluster === undefined ? conn.redis.unsubscribe(...chunk) : conn.redis.sunsubscribe(...chunk)
          sent.catch(() => {})
        }
      }
    }
    for (const [conn, bySlot] of subscribe) {
      for (const channels of bySlot.values()) {
        for (let i = 0; i < channels.length; i += this.batch) this.send(conn, channels.slice(i, i + this.batch))
      }
    }
  }

  private send (conn: Conn, channels: string[]): void {
    this.stats.subscribeCommands++
    const sent = this.options.cluster === undefined ? conn.redis.subscribe(...channels) : conn.redis.ssubscribe(...channels)
    sent.then(() => {
      const done: string[] = []
      for (const channel of channels) {
        const state = this.wanted.get(channel)
        if (state === undefined || state.conn !== conn || !state.sending) continue
        state.sending = false
        state.confirmed = true
        this.unconfirmed.delete(channel)
        done.push(channel)
      }
      if (done.length > 0 && !this.closed) this.options.events.confirmed(done)
    }, () => {
      // the connection dropped, or the slot moved (MOVED): its 'ready' or the next slot map tries again
      for (const channel of channels) {
        const state = this.wanted.get(channel)
        if (state !== undefined && state.conn === conn) state.sending = false
      }
      this.options.cluster?.refreshSlotsCache()
    })
  }

  private unconfirm (channel: string, state: ChannelState): void {
    if (state.confirmed || !this.unconfirmed.has(channel)) state.since = Date.now()
    state.confirmed = false
    state.sending = false
    this.unconfirmed.add(channel)
  }

  /** The connection for a slot: the one server, or the master of the slot now (null while the map has none). */
  private route (slot: number): Conn | null {
    const cluster = this.options.cluster
    if (cluster === undefined) return this.conns.get(STANDALONE) ?? null
    const nodeKey = cluster.slots[slot]?.[0]
    if (nodeKey === undefined) return null
    return this.conns.get(nodeKey) ?? this.open(nodeKey)
  }

  private open (key: string): Conn {
    const redis = this.options.connect(key === STANDALONE ? null : key)
    const conn: Conn = { key, redis, channels: new Set() }
    this.conns.set(key, conn)
    redis.on('ready', () => {
      // a fresh connection holds no subscription: everything routed here goes out again
      for (const channel of conn.channels) {
        const state = this.wanted.get(channel)
        if (state !== undefined) {
          this.unconfirm(channel, state)
          this.mark(channel)
        }
      }
    })
    redis.on('close', () => {
      if (this.closed) return
      for (const channel of conn.channels) {
        const state = this.wanted.get(channel)
        if (state !== undefined) this.unconfirm(channel, state)
      }
      this.options.events.lost(key)
      this.options.cluster?.refreshSlotsCache()
    })
    redis.on('error', (err: Error) => { this.options.events.lost(key, err) })
    // Redis unsubscribed this connection from a moved slot's channels: find out where they live now
    redis.on('moved', () => {
      for (const channel of conn.channels) {
        const state = this.wanted.get(channel)
        if (state !== undefined) this.unconfirm(channel, state)
      }
      this.options.cluster?.refreshSlotsCache()
      this.reroute(true)
    })
    const onMessage = (channel: string, message: string) => {
      this.stats.messages++
      this.wanted.get(channel)?.onMessage(message)
    }
    redis.on('message', onMessage)
    redis.on('smessage', onMessage)
    return conn
  }

  /** After a slot map refresh: channels whose slot has another master now move; idle old connections end. */
  private reroute (all = false): void {
    const cluster = this.options.cluster
    if (cluster === undefined || this.closed) return
    for (const [channel, state] of this.wanted) {
      const nodeKey = cluster.slots[state.slot]?.[0]
      if (all || state.conn === null || state.conn.key !== nodeKey || !state.confirmed) this.mark(channel)
    }
    const masters = new Set<string>()
    for (const owners of cluster.slots) if (owners?.[0] !== undefined) masters.add(owners[0])
    for (const [key, conn] of this.conns) {
      if (conn.channels.size === 0 && !masters.has(key)) {
        this.conns.delete(key)
        conn.redis.disconnect()
      }
    }
  }
}
