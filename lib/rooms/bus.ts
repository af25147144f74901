import type { HistoryResult, MaybePromise, Member, Presence, PublishInput, RoomEvent, RoomSummary } from './types.js'

/**
 * The seam between the registry (local members, local fan-out) and whatever carries events between instances.
 *
 * The registry calls `append` for every publish and delivers the returned event to its own members; the bus assigns
 * the id, keeps the history and hands events published on OTHER instances to the sink given in `attach`. The
 * in-memory bus is the single-instance case; a Redis bus implements the same calls across instances.
 * Optional members let a bus widen presence and direct messages beyond this instance.
 */
export interface Bus {
  readonly name: string
  /** id, history and cross-instance carriage of one event; rejects when it cannot be published */
  append (input: PublishInput): MaybePromise<RoomEvent>
  /** retained events of `room` after `sinceId` and whether that is all of them */
  history (room: string, sinceId: string): MaybePromise<HistoryResult>
  /** called once by the registry before any other call */
  attach (sink: BusSink): void
  /** deliver `message` to member `to` on another instance; resolves false when no instance has it */
  direct? (to: string, message: unknown): MaybePromise<boolean>
  /** presence bookkeeping across instances */
  memberJoined? (room: string, member: Member): void
  memberLeft? (room: string, member: Member): void
  presence? (room: string, local: Presence): MaybePromise<Presence>
  list? (local: RoomSummary[]): MaybePromise<RoomSummary[]>
  /**
   * Member-id prefixes (`<prefix>.<n>`, see `RoomRegistry.nextMemberId`) of the instances alive now, this one
   * included, so state kept about another instance's members (rtc peers) can be dropped once it has crashed.
   * null while the bus cannot tell (not connected, or connected too recently to have seen every instance's
   * heartbeat): then nothing may be judged dead.
   */
  liveInstances? (): MaybePromise<ReadonlySet<string> | null>
  /** with `liveInstances`: how long a crashed instance stays listed after its last heartbeat */
  readonly instanceTtlMs?: number
  /** true while the bus can publish (connected) */
  isReady (): boolean
  close (): Promise<void>
}

/** What a bus calls back into: the registry's local side. */
export interface BusSink {
  /** an event appended on another instance, for local members */
  deliver (event: RoomEvent): void
  /** a direct message for a local member; false when no such member is here */
  direct (to: string, message: unknown): boolean
  /** the prefix of the registry's member ids, known from the start (a bus that routes or tracks instances by it) */
  readonly memberPrefix?: string
}
