import type { HistoryResult, MaybePromise, Member, Presence, PublishInput, RoomEvent, RoomSummary, StreamPosition } from './types.js'

/**
 * The seams between the registry (local members, local fan-out, per-room ordering) and whatever spans instances,
 * shaped after Centrifuge's Broker / PresenceManager / node control and socket.io's cluster adapter. Each has an
 * in-memory form (this process only: lib/rooms/memory-bus.ts) and a Redis form (lib/redis/).
 *
 * The contract between the registry and a broker is positions, not timing: every event carries its room's
 * position (epoch, offset); the registry delivers each room's events to its members in offset order, once, and
 * fills any hole from `history`. A broker may hand over an event twice (its publish reply and its subscription) or
 * late; it must never hand over an event of a room at an offset it gave to another event of the same epoch.
 */

/** Publish with history, subscriptions per room, history since a position, current position. */
export interface Broker {
  readonly name: string
  /**
   * true when this instance's own events also come back through `handler.deliver` (its subscriptions), possibly
   * before `publish` answers: the registry then tags its publishes to recognise them
   */
  readonly echoes?: boolean
  /** called once by the registry before anything else */
  start (handler: BrokerHandler): void
  /**
   * Appends the event to the room's history at the room's next offset and sends it to every instance subscribed to
   * the room. Resolves the event with its position; rejects (GW_BUS_UNAVAILABLE) when it cannot be published.
   * `tag` travels with the event to the subscribed instances' `deliver` (only this instance reads it).
   */
  publish (input: PublishInput, tag?: string): MaybePromise<RoomEvent>
  /**
   * Retained events of `room` after `sinceId` (an event id, a room position), and whether that is all of them.
   * An id this broker cannot place (another epoch, malformed, beyond the room's last offset) is not recovered.
   */
  history (room: string, sinceId: string, options?: HistoryOptions): MaybePromise<HistoryResult>
  /** The room's current position (the offset of its last event, 0 before any); starts the room's epoch if needed. */
  position (room: string): MaybePromise<StreamPosition>
  /**
   * This instance wants (or no longer wants) the events of `room`. Calls may be batched; `handler.subscribed`
   * tells when events published from then on will arrive. A broker of one process may ignore both.
   */
  subscribe (room: string): void
  unsubscribe (room: string): void
  close (): Promise<void>
}

export interface HistoryOptions {
  /**
   * The registry asks on behalf of its own members: a position beyond the room's last offset then means history was
   * lost (a failover to a replica that missed writes), and the broker starts a new epoch so every client holding a
   * position of the old one resumes with a gap. Never set for positions that come from clients.
   */
  repair?: boolean
}

/** What a broker calls back into: the registry. */
export interface BrokerHandler {
  /** an event of a room this instance subscribed to; `tag` is the one this instance passed to `publish`, if it did */
  deliver (event: RoomEvent, tag?: string): void
  /**
   * The subscriptions of `rooms` are (again) in place: events published from now on arrive. Whatever was published
   * while they were not is caught up from history by the registry.
   */
  subscribed (rooms: readonly string[]): void
}

/** Members and users of rooms across instances, and the rooms that have members anywhere. */
export interface PresenceManager {
  /** a local member joined or left `room` (called after the registry's own bookkeeping) */
  add (room: string, member: Member): void
  remove (room: string, member: Member): void
  /** `local` is this instance's part; the result adds every other live instance's */
  presence (room: string, local: Presence): MaybePromise<Presence>
  list (local: RoomSummary[]): MaybePromise<RoomSummary[]>
}

/** Messages to one member on any instance (rtc signals) and which instances are alive. */
export interface NodeControl {
  /** called once by the registry before anything else */
  start (handler: ControlHandler): void
  /** delivers `message` to member `to` on its instance; resolves false when no instance has it */
  direct (to: string, message: unknown): MaybePromise<boolean>
  /**
   * Member-id prefixes (`<prefix>.<n>`, see `RoomRegistry.nextMemberId`) of the instances alive now, this one
   * included, so state kept about another instance's members (rtc peers) can be dropped once it has crashed.
   * null while it cannot tell (not connected, or connected too recently to have seen every instance's heartbeat).
   */
  liveInstances (): MaybePromise<ReadonlySet<string> | null>
  /** how long a crashed instance stays listed after its last heartbeat */
  readonly instanceTtlMs: number
}

export interface ControlHandler {
  /** the prefix of the registry's member ids: direct messages for `<memberPrefix>.<n>` come to this instance */
  readonly memberPrefix: string
  /** a direct message for a local member; false when no such member is here */
  direct (to: string, message: unknown): boolean
}

/**
 * What the registry runs on: a broker, and optionally presence and node control across instances (absent: this
 * instance alone). `failing` names what does not work now (`[]`: ready); `close` ends all of it.
 */
export interface Bus {
  readonly name: string
  readonly broker: Broker
  readonly presence?: PresenceManager
  readonly control?: NodeControl
  /** reasons this bus cannot serve now, e.g. `redis`, `redis:subscriptions`; empty when ready */
  failing (): string[]
  /** resolves once the bus is set up (its client library loaded); the rooms plugin awaits it at register */
  open? (): Promise<void>
  close (): Promise<void>
}
