export type MaybePromise<T> = T | Promise<T>

/**
 * One published event. `dataJson` is the JSON of `data`, computed once at publish; encoders build their frames
 * around it. `encoded` caches each encoder's output so live fan-out and history replay share the same bytes.
 */
export interface RoomEvent {
  readonly id: string
  /** position in the id epoch; internal ordering, not part of the wire format */
  readonly seq: number
  readonly room: string
  readonly event: string
  readonly data: unknown
  readonly dataJson: string
  /** publish time, ms since the Unix epoch */
  readonly time: number
  readonly encoded: Map<Encoder<unknown>, unknown>
}

/** Turns an event into one transport's wire form. One instance is shared by every member of that transport. */
export interface Encoder<T> {
  readonly name: string
  encode (event: RoomEvent): T
}

/** A subscriber of rooms on some transport (a WebSocket, an SSE stream, an rtc peer, a test double). */
export interface Member<T = any> {
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
