import { parseId } from '../rooms/ids.js'
import { encodeFor, isPromise, type HistoryResult, type MaybePromise, type Member, type RoomEvent } from '../rooms/types.js'
import { encodeGap, encodeRetry, PING, sseEncoder } from './encoder.js'
import { planReplay } from './replay.js'
import { SseWriter, type SseTarget } from './writer.js'
import { expiryWheel, type Expiring } from '../expiry.js'

/** The registry calls an SSE stream needs (RoomRegistry fits). */
export interface SseRegistry {
  join (room: string, member: Member): boolean
  leaveAll (member: Member): string[]
  history (room: string, sinceId: string): MaybePromise<HistoryResult>
}

/**
 * Why a stream ended: the client went away, it could not keep up, the server shuts down, resume failed, or the
 * stream's token expired.
 */
export type SseCloseReason = 'client' | 'overflow' | 'shutdown' | 'error' | 'expired'

/** The last event of a stream whose token expired (docs/protocol.md, "Extensions"), before the response ends. */
export const EXPIRED_EVENT = Buffer.from('event: expired\ndata: {"code":"UNAUTHENTICATED","message":"token expired"}\n\n')

export interface SseStreamOptions {
  id: string
  user: string | null
  /** the stream's rooms, distinct, already authorized */
  rooms: readonly string[]
  registry: SseRegistry
  target: SseTarget
  /** bytes a stream may queue while its socket is blocked before it is ended */
  sendBufferBytes: number
  retryMs: number
  /** ends the response: `end` flushes what is written then closes, `destroy` closes now */
  end: (how: 'end' | 'destroy') => void
  /** told once, after the stream left its rooms */
  onClose?: (reason: SseCloseReason, err?: unknown) => void
  /** when the stream's token expires (ms since the epoch): it gets `event: expired` and ends then; null/absent: never */
  expiresAt?: number | null
}

const OPENING = 0
const LIVE = 1
const CLOSED = 2

/**
 * One EventSource connection as a member of the room registry. Live events arrive already encoded (the shared
 * `sseEncoder`, once per publish) and go to the socket as they are.
 *
 * Resume without loss or repeat: `open(lastEventId)` joins the rooms FIRST, so every event published from then on
 * reaches the stream; while the histories are read (possibly asynchronously, from another process), those live
 * events are held back. Then gaps, history and held-back events are merged in id order without duplicates and
 * written as one chunk, and the stream goes live. After that it writes only events newer than the last one it
 * wrote, so ids on the wire are strictly increasing.
 */
export class SseStream implements Member<Buffer> {
  readonly id: string
  readonly user: string | null
  readonly transport = 'sse'
  readonly encoder = sseEncoder
  readonly rooms: readonly string[]
  private state = OPENING
  private pending: RoomEvent[] = []
  private pendingBytes = 0
  private last: RoomEvent | null = null
  private readonly writer: SseWriter
  private readonly registry: SseRegistry
  private readonly options: SseStreamOptions
  private expiring: Expiring | null = null

  constructor (options: SseStreamOptions) {
    this.id = options.id
    this.user = options.user
    this.rooms = options.rooms
    this.registry = options.registry
    this.options = options
    this.writer = new SseWriter(options.target, options.sendBufferBytes, () => { this.close('overflow') })
  }

  get live (): boolean {
    return this.state === LIVE
  }

  get closed (): boolean {
    return this.state === CLOSED
  }

  /**
   * Writes `retry:`, joins the rooms and, with a resume point, replays what was missed. Resolves once the stream is
   * live (or closed); never rejects: a failing history read ends the stream with reason `error`.
   */
  open (lastEventId: string | null): MaybePromise<void> {
    this.writer.write(encodeRetry(this.options.retryMs))
    const expiry = this.options.expiresAt
    if (expiry !== undefined && expiry !== null) {
      this.expiring = { due: (now) => this.expiryDue(now, expiry) }
      expiryWheel.schedule(this.expiring, expiry)
    }
    for (const room of this.rooms) this.registry.join(room, this)
    if (lastEventId === null) {
      this.goLive(null, [])
      return
    }
    let histories: Array<MaybePromise<HistoryResult>>
    try {
      histories = this.rooms.map((room) => this.registry.history(room, lastEventId))
    } catch (err) {
      this.close('error', err)
      return
    }
    if (!histories.some(isPromise)) {
      this.goLive(lastEventId, histories as HistoryResult[])
      return
    }
    return Promise.all(histories).then(
      (results) => { this.goLive(lastEventId, results) },
      (err) => { this.close('error', err) }
    )
  }

  /** From the registry: one event of one of the stream's rooms, encoded by `sseEncoder`. */
  deliver (encoded: Buffer, event: RoomEvent): void {
    if (this.state === LIVE) {
      const last = this.last
      if (last !== null && event.seq <= last.seq && sameEpoch(event, last)) return
      this.last = event
      this.writer.write(encoded)
    } else if (this.state === OPENING) {
      this.pending.push(event)
      this.pendingBytes += encoded.length
      if (this.pendingBytes > this.options.sendBufferBytes) this.close('overflow')
    }
  }

  /** The heartbeat comment; skipped while the socket is blocked (bytes are waiting anyway). */
  ping (): void {
    if (this.state !== CLOSED && !this.writer.blocked) this.writer.write(PING)
  }

  /**
   * Ends the stream: leaves every room at once, drops whatever waits, and ends the response (`client`: it is gone
   * already). A stream with bytes still waiting is cut rather than flushed: a reader that slow must not hold the
   * server open. Idempotent.
   */
  close (reason: SseCloseReason, err?: unknown): void {
    if (this.state === CLOSED) return
    this.state = CLOSED
    this.registry.leaveAll(this)
    if (this.expiring !== null) expiryWheel.cancel(this.expiring)
    const blocked = this.writer.blocked
    this.writer.close()
    this.pending = []
    this.pendingBytes = 0
    if (reason !== 'client') this.options.end(reason === 'overflow' || reason === 'error' || blocked ? 'destroy' : 'end')
    this.options.onClose?.(reason, err)
  }

  private expiryDue (now: number, expiry: number): number | null {
    if (this.state === CLOSED) return null
    if (now < expiry) return expiry
    this.writer.write(EXPIRED_EVENT, true)
    this.close('expired')
    return null
  }

  private goLive (lastEventId: string | null, histories: readonly HistoryResult[]): void {
    if (this.state !== OPENING) return
    const pending = this.pending
    this.pending = []
    this.pendingBytes = 0
    if (lastEventId === null && pending.length === 0) {
      this.state = LIVE
      return
    }
    const plan = planReplay(this.rooms, histories, pending, lastEventId)
    // A replay larger than the send buffer keeps its newest events, and the rooms that lost older ones get a gap
    // first: a slow client cannot make the server hold more than that (the whole history of every room of the
    // stream, otherwise), and one that cannot read it all does not reconnect into the same replay forever.
    const encoded = plan.events.map((event) => encodeFor(event, sseEncoder))
    let first = encoded.length
    let bytes = 0
    while (first > 0 && bytes + encoded[first - 1].length <= this.options.sendBufferBytes) bytes += encoded[--first].length
    const gaps = new Set(plan.gaps)
    for (let i = 0; i < first; i++) gaps.add(plan.events[i].room)
    const chunks: Buffer[] = []
    for (const room of this.rooms) if (gaps.has(room)) chunks.push(encodeGap(room))
    for (let i = first; i < encoded.length; i++) chunks.push(encoded[i])
    if (plan.events.length > 0) this.last = plan.events[plan.events.length - 1]
    this.state = LIVE
    // the replay is one write, within the bound on its own; bytes already waiting do not make it overflow
    if (chunks.length > 0) this.writer.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), true)
  }
}

function sameEpoch (a: RoomEvent, b: RoomEvent): boolean {
  const pa = parseId(a.id)
  const pb = parseId(b.id)
  return pa !== null && pb !== null && pa.epoch === pb.epoch
}
