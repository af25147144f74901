export type MaybePromise<T> = T | Promise<T>

/**
 * Where a room's history stands: `epoch` names one unbroken lifetime of the room's history (it changes when the
 * history was lost: expired, flushed, a failover that dropped writes), `offset` counts the room's events within it
 * (0: none yet). Offsets strictly increase within an epoch; positions of different epochs are not comparable.
 */
export interface StreamPosition {
  readonly epoch: string
  readonly offset: number
}

/**
 * One published event. `dataJson` is the JSON of `data`, computed once at publish; encoders build their frames
 * around it. `encoded` caches each encoder's output so live fan-out and history replay share the same bytes.
 * `id` is the event's position as text (`<epoch>-<offset>`, see lib/rooms/ids.ts); it is opaque to clients.
 */
export interface RoomEvent extends StreamPosition {
  readonly id: string
  readonly room: string
  readonly event: string
  /** the data; parsed from `dataJson` on first use for events that arrived as text (another instance, history) */
  readonly data: unknown
  readonly dataJson: string
  /** publish time, ms since the Unix epoch (the publishing instance's clock) */
  readonly time: number
  readonly encoded: Map<Encoder<unknown>, unknown>
}

/** Turns an event into one transport's wire form. One instance is shared by every member of that transport. */
export interface Encoder<T> {
  readonly name: string
  encode (event: RoomEvent): T
}

/** A subscriber of rooms on some transport (a WebSocket, an SSE stream, an rtc peer, a test double). */
export interface Member<T = unknown> {
  /** unique across instances: `<instanceId>.<n>`, see `RoomRegistry.nextMemberId` */
  readonly id: string
  /** the authenticated user id, or null when anonymous */
  readonly user: string | null
  readonly transport: string
  readonly encoder: Encoder<T>
  /** hand over one encoded event; must not throw for ordinary back-pressure, only on a broken member */
  deliver (encoded: T, event: RoomEvent): void
  /** a message addressed to this member alone (rtc signals); absent for members that take none */
  direct? (message: unknown): void
}

export interface PublishInput {
  room: string
  event: string
  data: unknown
}

export interface PublishOptions {
  /** a member id that does not receive this event (for echo suppression) */
  except?: string
}

export interface PublishResult {
  id: string
  /** members on this instance the event was handed to */
  delivered: number
}

export interface HistoryResult {
  /** the retained events after the resume point, oldest first */
  events: RoomEvent[]
  /** true when every event after the resume point is in `events` */
  recovered: boolean
  /** the room's position as of this read, when the broker tells it */
  position?: StreamPosition
}

export interface Presence {
  members: number
  users: string[]
}

export interface RoomSummary {
  room: string
  members: number
}

export function encodeFor<T> (event: RoomEvent, encoder: Encoder<T>): T {
  let value = event.encoded.get(encoder) as T | undefined
  if (value === undefined) {
    value = encoder.encode(event)
    event.encoded.set(encoder, value)
  }
  return value
}

export function isPromise<T> (value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function'
}
