import { randomBytes } from 'node:crypto'
import type { Broker, Bus } from './bus.js'
import { MemoryBus } from './memory-bus.js'
import { isRoomName } from './names.js'
import { isEventName } from './event.js'
import { formatId, UNKNOWN_EPOCH } from './ids.js'
import { GatewayErrors } from '../errors.js'
import { GatewayCounters } from '../metrics/counters.js'
import {
  encodeFor, isPromise,
  type Encoder, type HistoryResult, type MaybePromise, type Member, type Presence, type PublishOptions,
  type PublishResult, type RoomEvent, type RoomSummary, type StreamPosition
} from './types.js'

export interface RoomRegistryOptions {
  /** events kept per room for resume (the default in-memory bus); default 100 */
  historySize?: number
  /** what spans instances: broker, presence, node control; default a MemoryBus (this process only) */
  bus?: Bus
  /** told about a member whose `deliver` threw; delivery to the others goes on */
  onDeliveryError?: (err: unknown, member: Member, event: RoomEvent) => void
  /** a hole in a room's offsets that is not filled live within this long is filled from history; default 500 */
  gapTimeoutMs?: number
}

/** Members of a room with one encoder and one transport: each event is encoded once per encoder, counted once per group. */
interface Group {
  readonly encoder: Encoder<unknown>
  readonly transport: string
  readonly members: Set<Member>
}

/** An own publish on its way: who is excepted, and what its delivery counted (-1 until delivered). */
interface PendingPublish {
  readonly except: string | undefined
  delivered: number
  resolve: ((delivered: number) => void) | null
}

interface Held {
  readonly event: RoomEvent
  readonly pending: PendingPublish | undefined
}

/** Hands what `read` gives (null when it throws or rejects) to `done`: at once when it is synchronous. */
function whenSettled<T> (read: () => MaybePromise<T>, done: (value: T | null) => void): void {
  let value: MaybePromise<T>
  try {
    value = read()
  } catch {
    done(null)
    return
  }
  if (isPromise(value)) value.then(done, () => { done(null) })
  else done(value)
}

/** a hole that history fails to settle this many times in a row is skipped */
const MAX_CATCH_UP_RETRIES = 3

const STARTING = 0
const LIVE = 1

/**
 * One room with members on this instance: the members, and where delivery to them stands in the room's history.
 * Events reach the members in offset order, each once: an event ahead of the next offset waits in `held` until the
 * hole is filled (live, or from history after `gapTimeoutMs`); while the room's start position is being read,
 * everything waits.
 */
class LocalRoom {
  readonly members = new Map<string, Member>()
  /** members grouped by encoder and transport (a handful of groups per room) */
  readonly groups: Group[] = []
  /** member count per user id, for presence */
  readonly users = new Map<string, number>()
  state = STARTING
  /** null: the start position could not be read; the first event sets it */
  epoch: string | null = null
  offset = 0
  previousEpoch: string | null = null
  held: Held[] = []
  catchingUp = false
  /** a catch-up was asked for while one ran, or before the start position was known */
  catchUpAgain = false
  gapTimer: NodeJS.Timeout | null = null
  /** catch-ups in a row that could not settle the hole (history failed, or was older than the held events) */
  catchUpRetries = 0
  startWaiters: Array<() => void> | null = null
}

/**
 * The one room registry of an instance: which local members are in which rooms, and publish, which goes through
 * the broker (positions, history, other instances) and is then handed to local members encoded once per transport.
 *
 * Delivery follows positions, never timing: the broker may hand an event over from its publish answer, from a
 * subscription, or both, in any order; each room's events reach its members in offset order and once. When a room
 * gets its first local member the registry subscribes to it and reads its position; when the subscription is in place
 * (again, after a reconnect) it catches up from history, so nothing published in between is missed.
 */
export class RoomRegistry {
  readonly instanceId = randomBytes(4).toString('hex')
  readonly bus: Bus
  readonly broker: Broker
  /** operational counters of this instance (metrics, admin dashboard); gateways add to them */
  readonly counters = new GatewayCounters()
  /**
   * Times the members of a room here went on past events that neither a subscription nor history could provide
   * (trimmed or lost before they were caught up): their clients learn it on resume (a gap).
   */
  holesSkipped = 0
  private readonly rooms = new Map<string, LocalRoom>()
  private readonly memberRooms = new Map<string, Set<string>>()
  private readonly directMembers = new Map<string, Member>()
  private readonly onDeliveryError: NonNullable<RoomRegistryOptions['onDeliveryError']>
  private readonly gapTimeoutMs: number
  /** own publishes to rooms with local members, by the tag their events carry back from the broker */
  private readonly pendings = new Map<string, PendingPublish>()
  private readonly memberPrefix = `${this.instanceId}.`
  private tagSeq = 0
  private memberSeq = 0
  private closed = false

  constructor (options: RoomRegistryOptions = {}) {
    this.bus = options.bus ?? new MemoryBus({ historySize: options.historySize ?? 100 })
    this.broker = this.bus.broker
    this.onDeliveryError = options.onDeliveryError ?? (() => {})
    this.gapTimeoutMs = options.gapTimeoutMs ?? 500
    this.broker.start({
      deliver: (event, tag) => { this.fromBroker(event, tag) },
      subscribed: (rooms) => {
        for (const room of rooms) {
          const local = this.rooms.get(room)
          if (local !== undefined) this.catchUp(room, local)
        }
      }
    })
    this.bus.control?.start({
      memberPrefix: this.instanceId,
      direct: (to, message) => this.directLocal(to, message)
    })
  }

  /** A member id unique across instances (the instance id is its prefix, so direct messages can be routed). */
  nextMemberId (): string {
    return `${this.instanceId}.${(++this.memberSeq).toString(36)}`
  }

  /** Adds `member` to `room`; false when it was already there. Throws GW_INVALID_ROOM for a bad name. */
  join (room: string, member: Member): boolean {
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
    let local = this.rooms.get(room)
    if (local === undefined) {
      local = new LocalRoom()
      this.rooms.set(room, local)
      this.startRoom(room, local)
    }
    if (local.members.has(member.id)) return false
    local.members.set(member.id, member)
    let group = local.groups.find((g) => g.encoder === member.encoder && g.transport === member.transport)
    if (group === undefined) {
      group = { encoder: member.encoder, transport: member.transport, members: new Set() }
      local.groups.push(group)
    }
    group.members.add(member)
    if (member.user !== null) local.users.set(member.user, (local.users.get(member.user) ?? 0) + 1)
    let joined = this.memberRooms.get(member.id)
    if (joined === undefined) {
      joined = new Set()
      this.memberRooms.set(member.id, joined)
    }
    joined.add(room)
    if (member.direct !== undefined) this.directMembers.set(member.id, member)
    this.bus.presence?.add(room, member)
    return true
  }

  /** Removes `member` from `room`; false when it was not there. */
  leave (room: string, member: Member): boolean {
    const local = this.rooms.get(room)
    if (local === undefined || !local.members.delete(member.id)) return false
    const at = local.groups.findIndex((g) => g.encoder === member.encoder && g.transport === member.transport)
    if (at !== -1) {
      const group = local.groups[at]
      group.members.delete(member)
      if (group.members.size === 0) local.groups.splice(at, 1)
    }
    if (member.user !== null) {
      const count = (local.users.get(member.user) ?? 1) - 1
      if (count === 0) local.users.delete(member.user)
      else local.users.set(member.user, count)
    }
    if (local.members.size === 0) this.stopRoom(room, local)
    const joined = this.memberRooms.get(member.id)
    if (joined !== undefined) {
      joined.delete(room)
      if (joined.size === 0) {
        this.memberRooms.delete(member.id)
        this.directMembers.delete(member.id)
      }
    }
    this.bus.presence?.remove(room, member)
    return true
  }

  /** Removes `member` from every room; returns the rooms it left. */
  leaveAll (member: Member): string[] {
    const joined = this.memberRooms.get(member.id)
    if (joined === undefined) return []
    const rooms = [...joined]
    for (const room of rooms) this.leave(room, member)
    return rooms
  }

  /** Rooms `member` is in. */
  roomsOf (memberId: string): string[] {
    return [...(this.memberRooms.get(memberId) ?? [])]
  }

  /**
   * Publishes `event` with `data` to every member of `room` on every instance. Synchronous with the in-memory bus,
   * a promise with a bus that has to ask another process; it settles once the local members have the event.
   * `delivered` counts local members.
   */
  publish (room: string, event: string, data: unknown, options: PublishOptions = {}): MaybePromise<PublishResult> {
    if (this.closed) throw new GatewayErrors.CLOSED()
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
    if (!isEventName(event)) throw new GatewayErrors.INVALID_EVENT(JSON.stringify(event))
    const except = options.except
    // an own event may come back through a subscription before the publish answer: the tag finds its publish
    let tag: string | undefined
    let pending: PendingPublish | undefined
    if (this.rooms.has(room) && this.broker.echoes === true) {
      tag = this.memberPrefix + (++this.tagSeq).toString(36)
      pending = { except, delivered: -1, resolve: null }
      this.pendings.set(tag, pending)
    } else if (except !== undefined) {
      pending = { except, delivered: -1, resolve: null }
    }
    let appended: MaybePromise<RoomEvent>
    try {
      appended = this.broker.publish({ room, event, data }, tag)
    } catch (err) {
      if (tag !== undefined) this.pendings.delete(tag)
      throw err
    }
    if (!isPromise(appended)) {
      this.counters.eventsPublished++
      const delivered = this.settle(appended, tag, pending)
      return isPromise(delivered) ? delivered.then((n) => ({ id: appended.id, delivered: n })) : { id: appended.id, delivered }
    }
    return appended.then((ev) => {
      this.counters.eventsPublished++
      const delivered = this.settle(ev, tag, pending)
      return isPromise(delivered) ? delivered.then((n) => ({ id: ev.id, delivered: n })) : { id: ev.id, delivered }
    }, (err: unknown) => {
      if (tag !== undefined) this.pendings.delete(tag)
      throw err
    })
  }

  /** The publish answer: the event goes to local members in its turn; resolves what its delivery counted. */
  private settle (event: RoomEvent, tag: string | undefined, pending: PendingPublish | undefined): MaybePromise<number> {
    if (tag !== undefined) this.pendings.delete(tag)
    const local = this.rooms.get(event.room)
    if (local === undefined) return pending !== undefined && pending.delivered >= 0 ? pending.delivered : 0
    const own = pending ?? { except: undefined, delivered: -1, resolve: null }
    const delivered = this.offer(event.room, local, event, own)
    if (delivered >= 0) return delivered
    // waiting for earlier events of the room: resolves when it is delivered (or the room empties)
    return new Promise<number>((resolve) => { own.resolve = resolve })
  }

  private fromBroker (event: RoomEvent, tag: string | undefined): void {
    const local = this.rooms.get(event.room)
    if (local === undefined) return
    this.offer(event.room, local, event, tag === undefined ? undefined : this.pendings.get(tag))
  }

  /**
   * One event for a room's members, from any path. Delivers it if it is the next offset (and whatever waited
   * behind it), drops it if it was delivered already, holds it if earlier ones are missing. Returns what its delivery
   * counted, or -1 while it is held.
   */
  private offer (room: string, local: LocalRoom, event: RoomEvent, pending: PendingPublish | undefined): number {
    if (local.state === STARTING) {
      this.hold(local, event, pending)
      return -1
    }
    if (local.epoch === null) {
      // the start position could not be read: this event is where delivery starts
      local.epoch = event.epoch
      local.offset = event.offset - 1
    }
    if (event.epoch !== local.epoch) {
      if (event.epoch === local.previousEpoch) return this.duplicate(local, pending)
      // the room's history began a new epoch (it was lost): what waited of the old one goes out first
      this.flushHeld(room, local)
      local.previousEpoch = local.epoch
      local.epoch = event.epoch
      local.offset = 0
    }
    if (event.offset <= local.offset) return this.duplicate(local, pending)
    if (event.offset === local.offset + 1) {
      const delivered = this.deliverNow(local, event, pending)
      if (local.held.length > 0) this.drainHeld(local)
      return delivered
    }
    this.hold(local, event, pending)
    if (!local.catchingUp) this.armGapTimer(room, local)
    return -1
  }

  /** A hole not filled live within `gapTimeoutMs` is filled from history. */
  private armGapTimer (room: string, local: LocalRoom): void {
    if (local.gapTimer !== null) return
    local.gapTimer = setTimeout(() => {
      local.gapTimer = null
      this.catchUp(room, local)
    }, this.gapTimeoutMs)
    local.gapTimer.unref()
  }

  private hold (local: LocalRoom, event: RoomEvent, pending: PendingPublish | undefined): void {
    const held = local.held
    let i = held.length
    // nearly always appended at the end (events arrive mostly in order)
    while (i > 0 && (held[i - 1].event.epoch !== event.epoch || held[i - 1].event.offset > event.offset)) i--
    if (i > 0 && held[i - 1].event.epoch === event.epoch && held[i - 1].event.offset === event.offset) {
      // the same event by another path: keep the one that knows its publish
      if (pending !== undefined && held[i - 1].pending === undefined) held[i - 1] = { event: held[i - 1].event, pending }
      return
    }
    held.splice(i, 0, { event, pending })
  }

  /** Delivers the held events that are now next in line. */
  private drainHeld (local: LocalRoom): void {
    const held = local.held
    let i = 0
    while (i < held.length && held[i].event.epoch === local.epoch && held[i].event.offset <= local.offset + 1) {
      const { event, pending } = held[i++]
      if (event.offset <= local.offset) this.duplicate(local, pending)
      else this.deliverNow(local, event, pending)
    }
    if (i > 0) held.splice(0, i)
    if (held.length === 0 && local.gapTimer !== null) {
      clearTimeout(local.gapTimer)
      local.gapTimer = null
    }
  }

  /** Delivers everything held, in order, over any hole that is left: what is missing cannot be had. */
  private flushHeld (room: string, local: LocalRoom): void {
    const held = local.held
    local.held = []
    if (local.gapTimer !== null) {
      clearTimeout(local.gapTimer)
      local.gapTimer = null
    }
    // held events share the room's epoch (a new epoch flushes before it switches)
    for (const { event, pending } of held) {
      if (event.offset <= local.offset) this.duplicate(local, pending)
      else this.deliverNow(local, event, pending)
    }
    if (held.length > 0) this.holesSkipped++
  }

  private deliverNow (local: LocalRoom, event: RoomEvent, pending: PendingPublish | undefined): number {
    local.offset = event.offset
    const delivered = this.fanOut(local, event, pending?.except)
    if (pending !== undefined) {
      pending.delivered = delivered
      pending.resolve?.(delivered)
      pending.resolve = null
    }
    return delivered
  }

  /** An event delivered already (by another path): its publish learns what that delivery counted. */
  private duplicate (local: LocalRoom, pending: PendingPublish | undefined): number {
    if (pending === undefined) return 0
    if (pending.delivered < 0) {
      // delivered by a path that did not know this publish (a catch-up from history): count the room as it is
      pending.delivered = local.members.size - (pending.except !== undefined && local.members.has(pending.except) ? 1 : 0)
    }
    pending.resolve?.(pending.delivered)
    pending.resolve = null
    return pending.delivered
  }

  /** Hands an event to the local members of its room, encoded once per encoder; returns how many took it. */
  private fanOut (local: LocalRoom, event: RoomEvent, except?: string): number {
    let delivered = 0
    for (const group of local.groups) {
      const encoded = encodeFor(event, group.encoder)
      let handed = 0
      for (const member of group.members) {
        if (except !== undefined && member.id === except) continue
        try {
          member.deliver(encoded, event)
          handed++
        } catch (err) {
          this.onDeliveryError(err, member, event)
        }
      }
      // metrics: one add per transport group and event, never per member
      if (handed > 0) this.counters.delivered(group.transport, handed)
      delivered += handed
    }
    return delivered
  }

  // ---- start, catch-up and end of a local room --------------------------------------------------------------------

  private startRoom (room: string, local: LocalRoom): void {
    this.broker.subscribe(room)
    whenSettled(() => this.broker.position(room), (position) => { this.started(room, local, position) })
  }

  private started (room: string, local: LocalRoom, position: StreamPosition | null): void {
    if (this.rooms.get(room) !== local) return
    local.state = LIVE
    if (position !== null) {
      local.epoch = position.epoch
      local.offset = position.offset
    }
    const held = local.held
    local.held = []
    for (const { event, pending } of held) this.offer(room, local, event, pending)
    const waiters = local.startWaiters
    local.startWaiters = null
    if (waiters !== null) for (const wake of waiters) wake()
    if (local.catchUpAgain) {
      local.catchUpAgain = false
      this.catchUp(room, local)
    }
  }

  /** Reads what the room's members may have missed since the last delivered offset, and delivers it. */
  private catchUp (room: string, local: LocalRoom): void {
    if (local.state === STARTING || local.catchingUp) {
      local.catchUpAgain = true
      return
    }
    // no position known (it could not be read): the next event is where delivery starts, nothing to catch up from
    if (local.epoch === null) return
    if (local.gapTimer !== null) {
      clearTimeout(local.gapTimer)
      local.gapTimer = null
    }
    local.catchingUp = true
    const since = formatId(local.epoch, local.offset)
    whenSettled(() => this.broker.history(room, since, { repair: true }), (result) => { this.caughtUp(room, local, result) })
  }

  private caughtUp (room: string, local: LocalRoom, result: HistoryResult | null): void {
    local.catchingUp = false
    if (this.rooms.get(room) !== local) return
    if (result !== null) {
      const position = result.position
      if (!result.recovered && result.events.length === 0 && position !== undefined && position.epoch !== local.epoch) {
        // a new epoch that holds nothing for these members (history was lost or repaired): go on from its position
        this.flushHeld(room, local)
        local.previousEpoch = local.epoch
        local.epoch = position.epoch
        local.offset = position.offset
      }
      for (const event of result.events) this.offer(room, local, event, undefined)
      if (!result.recovered && local.held.length === 0 && result.events.length > 0) this.holesSkipped++
    }
    if (local.held.length > 0) {
      // history read before the held events were published (its answer can trail them: another connection, a
      // script reloaded after NOSCRIPT) says nothing of the hole: the missing events may still come live, so wait
      // and read again; history that failed is asked again too, a bounded number of times
      const newest = local.held[local.held.length - 1].event
      const before = result?.position !== undefined && result.position.epoch === newest.epoch && result.position.offset < newest.offset
      if ((before || result === null) && local.catchUpRetries < MAX_CATCH_UP_RETRIES) {
        local.catchUpRetries++
        this.armGapTimer(room, local)
      } else {
        // whatever hole is left cannot be filled: go on with what waited behind it
        this.flushHeld(room, local)
      }
    }
    if (local.held.length === 0) local.catchUpRetries = 0
    if (local.catchUpAgain) {
      local.catchUpAgain = false
      this.catchUp(room, local)
    }
  }

  private stopRoom (room: string, local: LocalRoom): void {
    this.rooms.delete(room)
    this.broker.unsubscribe(room)
    if (local.gapTimer !== null) clearTimeout(local.gapTimer)
    for (const { pending } of local.held) if (pending !== undefined) this.duplicate(local, pending)
    local.held = []
    const waiters = local.startWaiters
    local.startWaiters = null
    if (waiters !== null) for (const wake of waiters) wake()
  }

  // ---- reads -----------------------------------------------------------------------------------------------------

  /**
   * The position from which a member joining `room` now receives its events: the last offset delivered here (or, for
   * a room without local members, the broker's current one). A promise only while the room's start is being read.
   */
  position (room: string): MaybePromise<StreamPosition> {
    const local = this.rooms.get(room)
    if (local === undefined) return this.broker.position(room)
    if (local.state === LIVE) return { epoch: local.epoch ?? UNKNOWN_EPOCH, offset: local.offset }
    return new Promise<void>((resolve) => { (local.startWaiters ??= []).push(resolve) }).then(() => this.position(room))
  }

  /**
   * Retained events of `room` after `sinceId`, and whether that is every one of them. For a room with local members
   * it stops at what has been delivered here: later events reach those members live, so a member that joined before
   * asking gets each event once (history up to there, live after).
   */
  history (room: string, sinceId: string): MaybePromise<HistoryResult> {
    const result = this.broker.history(room, sinceId)
    return isPromise(result) ? result.then((r) => this.upToDelivered(room, r)) : this.upToDelivered(room, result)
  }

  private upToDelivered (room: string, result: HistoryResult): MaybePromise<HistoryResult> {
    const local = this.rooms.get(room)
    if (local === undefined || result.events.length === 0) return result
    if (local.state === STARTING) {
      return new Promise<void>((resolve) => { (local.startWaiters ??= []).push(resolve) }).then(() => this.upToDelivered(room, result))
    }
    const last = result.events[result.events.length - 1]
    if (local.epoch === null || last.epoch !== local.epoch || last.offset <= local.offset) return result
    const offset = local.offset
    const epoch = local.epoch
    return { ...result, events: result.events.filter((e) => e.epoch !== epoch || e.offset <= offset) }
  }

  /** Sends `message` to one member, here or (through node control) on another instance; false when it is nowhere. */
  direct (to: string, message: unknown): MaybePromise<boolean> {
    if (this.directLocal(to, message)) return true
    const control = this.bus.control
    if (to.startsWith(this.memberPrefix) || control === undefined) return false
    return control.direct(to, message)
  }

  private directLocal (to: string, message: unknown): boolean {
    const member = this.directMembers.get(to)
    if (member?.direct === undefined) return false
    member.direct(message)
    return true
  }

  /** Local members of `room`. */
  members (room: string): Member[] {
    return [...(this.rooms.get(room)?.members.values() ?? [])]
  }

  /** Rooms with members on this instance (metrics: `gateways_rooms`). */
  get localRoomCount (): number {
    return this.rooms.size
  }

  /** Number of local members of `room`. */
  size (room: string): number {
    return this.rooms.get(room)?.members.size ?? 0
  }

  /** Rooms with members and their counts (every instance when the bus spans several). */
  list (): MaybePromise<RoomSummary[]> {
    const local: RoomSummary[] = []
    for (const [room, { members }] of this.rooms) local.push({ room, members: members.size })
    return this.bus.presence?.list(local) ?? local
  }

  /** Members and distinct users of `room` (every instance when the bus spans several). */
  presence (room: string): MaybePromise<Presence> {
    const local = this.rooms.get(room)
    const here: Presence = { members: local?.members.size ?? 0, users: [...(local?.users.keys() ?? [])] }
    return this.bus.presence?.presence(room, here) ?? here
  }

  /**
   * Member-id prefixes of the instances alive now (this one included), or null when the bus cannot tell: always
   * null with a bus of one instance (the in-memory bus), where no other instance can crash.
   */
  liveInstances (): MaybePromise<ReadonlySet<string> | null> {
    return this.bus.control?.liveInstances() ?? null
  }

  /** How long a crashed instance stays in `liveInstances()`; null when the bus does not track instances. */
  get instanceTtlMs (): number | null {
    // a control that cannot tell which instances live (no liveness) has no TTL either
    return this.bus.control?.instanceTtlMs ?? null
  }

  /** True while publishing works (the bus is connected and its subscriptions are in place). */
  isReady (): boolean {
    return !this.closed && this.bus.failing().length === 0
  }

  /** What does not work now (`/ready` lists it): the bus's reasons, or `closed`. */
  failing (): string[] {
    return this.closed ? ['closed'] : this.bus.failing()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const [room, local] of [...this.rooms]) {
      if (local.gapTimer !== null) clearTimeout(local.gapTimer)
      for (const { pending } of local.held) if (pending !== undefined) this.duplicate(local, pending)
      local.held = []
      this.rooms.delete(room)
    }
    await this.bus.close()
  }
}
