import { randomBytes } from 'node:crypto'
import type { Bus } from './bus.js'
import { MemoryBus } from './memory-bus.js'
import { isRoomName } from './names.js'
import { isEventName } from './event.js'
import { GatewayErrors } from '../errors.js'
import { GatewayCounters } from '../metrics/counters.js'
import {
  encodeFor, isPromise,
  type Encoder, type HistoryResult, type MaybePromise, type Member, type Presence, type PublishOptions,
  type PublishResult, type RoomEvent, type RoomSummary
} from './types.js'

export interface RoomRegistryOptions {
  /** events kept per room for resume (in-memory bus); default 100 */
  historySize?: number
  /** carries events between instances; default: a MemoryBus (this process only) */
  bus?: Bus
  /** told about a member whose `deliver` threw; delivery to the others goes on */
  onDeliveryError?: (err: unknown, member: Member, event: RoomEvent) => void
}

/** Members of a room with one encoder and one transport: each event is encoded once per encoder, counted once per group. */
interface Group {
  readonly encoder: Encoder<unknown>
  readonly transport: string
  readonly members: Set<Member>
}

interface LocalRoom {
  readonly members: Map<string, Member>
  /** members grouped by encoder and transport (a handful of groups per room) */
  readonly groups: Group[]
  /** member count per user id, for presence */
  readonly users: Map<string, number>
}

/**
 * The one room registry of an instance: which local members are in which rooms, and publish, which goes through
 * the bus (ids, history, other instances) and is then handed to local members encoded once per transport.
 */
export class RoomRegistry {
  readonly instanceId = randomBytes(4).toString('hex')
  readonly bus: Bus
  /** operational counters of this instance (metrics, admin dashboard); gateways add to them */
  readonly counters = new GatewayCounters()
  private readonly rooms = new Map<string, LocalRoom>()
  private readonly memberRooms = new Map<string, Set<string>>()
  private readonly directMembers = new Map<string, Member>()
  private readonly onDeliveryError: NonNullable<RoomRegistryOptions['onDeliveryError']>
  private memberSeq = 0
  private closed = false

  constructor (options: RoomRegistryOptions = {}) {
    this.bus = options.bus ?? new MemoryBus({ historySize: options.historySize ?? 100 })
    this.onDeliveryError = options.onDeliveryError ?? (() => {})
    this.bus.attach({
      deliver: (event) => { this.deliverLocal(event) },
      direct: (to, message) => this.directLocal(to, message),
      memberPrefix: this.instanceId
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
      local = { members: new Map(), groups: [], users: new Map() }
      this.rooms.set(room, local)
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
    this.bus.memberJoined?.(room, member)
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
    if (local.members.size === 0) this.rooms.delete(room)
    const joined = this.memberRooms.get(member.id)
    if (joined !== undefined) {
      joined.delete(room)
      if (joined.size === 0) {
        this.memberRooms.delete(member.id)
        this.directMembers.delete(member.id)
      }
    }
    this.bus.memberLeft?.(room, member)
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
   * a promise with a bus that has to ask another process. `delivered` counts local members.
   */
  publish (room: string, event: string, data: unknown, options: PublishOptions = {}): MaybePromise<PublishResult> {
    if (this.closed) throw new GatewayErrors.CLOSED()
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
    if (!isEventName(event)) throw new GatewayErrors.INVALID_EVENT(JSON.stringify(event))
    const appended = this.bus.append({ room, event, data })
    if (isPromise(appended)) {
      return appended.then((ev) => {
        this.counters.eventsPublished++
        return { id: ev.id, delivered: this.deliverLocal(ev, options.except) }
      })
    }
    this.counters.eventsPublished++
    return { id: appended.id, delivered: this.deliverLocal(appended, options.except) }
  }

  /** Hands an already-appended event to the local members of its room; returns how many took it. */
  deliverLocal (event: RoomEvent, except?: string): number {
    const local = this.rooms.get(event.room)
    if (local === undefined) return 0
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

  /** Sends `message` to one member, here or (through the bus) on another instance; false when it is nowhere. */
  direct (to: string, message: unknown): MaybePromise<boolean> {
    if (this.directLocal(to, message)) return true
    if (to.startsWith(`${this.instanceId}.`) || this.bus.direct === undefined) return false
    return this.bus.direct(to, message)
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
    return this.bus.list?.(local) ?? local
  }

  /** Members and distinct users of `room` (every instance when the bus spans several). */
  presence (room: string): MaybePromise<Presence> {
    const local = this.rooms.get(room)
    const here: Presence = { members: local?.members.size ?? 0, users: [...(local?.users.keys() ?? [])] }
    return this.bus.presence?.(room, here) ?? here
  }

  /**
   * Member-id prefixes of the instances alive now (this one included), or null when the bus cannot tell: always
   * null with a bus of one instance (the in-memory bus), where no other instance can crash.
   */
  liveInstances (): MaybePromise<ReadonlySet<string> | null> {
    return this.bus.liveInstances?.() ?? null
  }

  /** How long a crashed instance stays in `liveInstances()`; null when the bus does not track instances. */
  get instanceTtlMs (): number | null {
    return this.bus.liveInstances === undefined ? null : this.bus.instanceTtlMs ?? null
  }

  /** Retained events of `room` after `sinceId`, and whether that is every one of them. */
  history (room: string, sinceId: string): MaybePromise<HistoryResult> {
    return this.bus.history(room, sinceId)
  }

  /** True while publishing works (the bus is connected). */
  isReady (): boolean {
    return !this.closed && this.bus.isReady()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.bus.close()
  }
}
