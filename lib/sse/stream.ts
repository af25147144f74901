import { formatId, formatStreamId, parseStreamId, UNKNOWN_EPOCH } from '../rooms/ids.js'
import { encodeFor, isPromise, type HistoryResult, type MaybePromise, type Member, type RoomEvent, type StreamPosition } from '../rooms/types.js'
import { encodeGap, encodeRetry, PING, sseEncoder } from './encoder.js'
import { planReplay } from './replay.js'
import { SseWriter, type SseTarget } from './writer.js'
import { expiryWheel, type Expiring } from '../expiry.js'

/** The registry calls an SSE stream needs (RoomRegistry fits). */
export interface SseRegistry {
  join (room: string, member: Member): boolean
  leaveAll (member: Member): string[]
  history (room: string, sinceId: string): MaybePromise<HistoryResult>
  /** where a member of `room` joined now starts receiving (see RoomRegistry.position) */
  position (room: string): MaybePromise<StreamPosition>
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
 * Ids: a stream of one room sends its events' own ids. A stream of several rooms sends stream ids, the position of
 * EVERY one of its rooms (lib/rooms/ids.ts), so the `Last-Event-ID` of any event resumes the whole stream, room by
 * room, on any instance; the event's bytes after its `id:` line are still the shared encoding.
 *
 * Resume without loss or repeat: `open(lastEventId)` joins the rooms FIRST, so every event published from then on
 * reaches the stream; while the histories are read (possibly asynchronously, from another process), those live
 * events are held back. Then gaps, history and held-back events are merged without duplicates and written as one
 * chunk, and the stream goes live. The registry delivers each room's events in offset order, once.
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
  /** per room of the stream: the position written last, as an event id (the parts of the stream id) */
  private readonly positions: string[]
  private readonly epochs: string[]
  private readonly offsets: number[]
  /** room → index, for streams of several rooms */
  private readonly index: Map<string, number> | null
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
    this.positions = this.rooms.map(() => UNKNOWN_POSITION)
    this.epochs = this.rooms.map(() => UNKNOWN_EPOCH)
    this.offsets = this.rooms.map(() => 0)
    this.index = this.rooms.length > 1 ? new Map(this.rooms.map((room, i) => [room, i])) : null
    this.writer = new SseWriter(options.target, options.sendBufferBytes, () => { this.close('overflow') })
  }

  get live (): boolean {
    return this.state === LIVE
  }

  get closed (): boolean {
    return this.state === CLOSED
  }

  /**
   * Joins the rooms, waits until each knows its position (at once in one process), writes `retry:` and, with a
   * resume point, replays what was missed. Resolves once the stream is live (or closed); never rejects: a failing
   * history read ends the stream with reason `error`.
   */
  open (lastEventId: string | null): MaybePromise<void> {
    const expiry = this.options.expiresAt
    if (expiry !== undefined && expiry !== null) {
      this.expiring = { due: (now) => this.expiryDue(now, expiry) }
      expiryWheel.schedule(this.expiring, expiry)
    }
    for (const room of this.rooms) this.registry.join(room, this)
    const sinces = lastEventId === null ? null : parseStreamId(lastEventId, this.rooms.length)
    let starts: Array<MaybePromise<StreamPosition>>
    let histories: Array<MaybePromise<HistoryResult>> = []
    try {
      // a room new to this instance starts by reading its position: the stream starts once every room has, so
      // everything published after its first bytes reaches it
      starts = this.rooms.map((room) => this.registry.position(room))
      if (sinces !== null) histories = this.rooms.map((room, i) => this.registry.history(room, sinces[i] ?? UNREADABLE))
    } catch (err) {
      this.close('error', err)
      return
    }
    const proceed = (results: HistoryResult[]): void => {
      // where each room stands once the replay is written: what the registry has delivered here by now
      let positions: StreamPosition[] | null = null
      try {
        if (this.index !== null) positions = this.rooms.map((room) => this.registry.position(room) as StreamPosition)
      } catch (err) {
        this.close('error', err)
        return
      }
      this.goLive(sinces, results, positions)
    }
    if (!starts.some(isPromise) && !histories.some(isPromise)) return proceed(histories as HistoryResult[])
    return Promise.all(starts).then(async () => await Promise.all(histories)).then(proceed, (err) => { this.close('error', err) })
  }

  /** From the registry: one event of one of the stream's rooms, encoded by `sseEncoder`. */
  deliver (encoded: Buffer, event: RoomEvent): void {
    if (this.state === LIVE) {
      const i = this.index === null ? 0 : this.index.get(event.room) as number
      if (event.epoch === this.epochs[i] && event.offset <= this.offsets[i]) return
      this.advance(i, event)
      if (this.index === null) {
        this.writer.write(encoded)
      } else {
        this.writer.write(Buffer.from(`id: ${formatStreamId(this.positions)}\n`))
        this.writer.write(encoded.subarray(5 + event.id.length))
      }
    } else if (this.state === OPENING) {
      this.pending.push(event)
      this.pendingBytes += encoded.length
      if (this.pendingBytes > this.options.sendBufferBytes) this.close('overflow')
    }
  }

  /** The heartbeat comment; skipped while the socket is blocked (bytes are waiting anyway) or the stream opens. */
  ping (): void {
    if (this.state === LIVE && !this.writer.blocked) this.writer.write(PING)
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

  private advance (i: number, position: StreamPosition & { id?: string }): void {
    this.epochs[i] = position.epoch
    this.offsets[i] = position.offset
    this.positions[i] = position.id ?? formatId(position.epoch, position.offset)
  }

  private expiryDue (now: number, expiry: number): number | null {
    if (this.state === CLOSED) return null
    if (now < expiry) return expiry
    this.writer.write(EXPIRED_EVENT, true)
    this.close('expired')
    return null
  }

  private goLive (sinces: Array<string | null> | null, histories: readonly HistoryResult[], positions: readonly StreamPosition[] | null): void {
    if (this.state !== OPENING) return
    const pending = this.pending
    this.pending = []
    this.pendingBytes = 0
    this.writer.write(encodeRetry(this.options.retryMs))
    if (sinces === null && pending.length === 0) {
      if (positions !== null) positions.forEach((p, i) => { this.advance(i, p) })
      this.state = LIVE
      return
    }
    const plan = planReplay(this.rooms, histories, pending, sinces ?? this.rooms.map(() => null))
    // A replay larger than the send buffer keeps its newest events, and the rooms that lost older ones get a gap
    // first: a slow client cannot make the server hold more than that (the whole history of every room of the
    // stream, otherwise), and one that cannot read it all does not reconnect into the same replay forever.
    const encoded = plan.events.map((event) => encodeFor(event, sseEncoder))
    let first = encoded.length
    let bytes = 0
    while (first > 0 && bytes + encoded[first - 1].length <= this.options.sendBufferBytes) bytes += encoded[--first].length
    const gaps = new Set(plan.gaps)
    const starts = [...plan.starts]
    for (let j = 0; j < first; j++) {
      const event = plan.events[j]
      gaps.add(event.room)
      // a room's events are in order: it resumes after the last one left out
      starts[this.index === null ? 0 : this.index.get(event.room) as number] = event.id
    }
    const chunks: Buffer[] = []
    for (const room of this.rooms) if (gaps.has(room)) chunks.push(encodeGap(room))
    // the ids of replayed events tell only what was written before them: a client cut off inside the replay
    // resumes with the rest of it
    starts.forEach((start, i) => {
      if (start !== null) this.advance(i, parsePosition(start))
      else if (positions !== null) this.advance(i, positions[i])
    })
    for (let j = first; j < plan.events.length; j++) {
      const event = plan.events[j]
      const i = this.index === null ? 0 : this.index.get(event.room) as number
      this.advance(i, event)
      if (this.index === null) {
        chunks.push(encoded[j])
      } else {
        chunks.push(Buffer.from(`id: ${formatStreamId(this.positions)}\n`), encoded[j].subarray(5 + event.id.length))
      }
    }
    // from here on, each room stands where the registry has delivered to (never behind what was written)
    if (positions !== null) {
      positions.forEach((p, i) => {
        if (p.epoch !== this.epochs[i] || p.offset > this.offsets[i]) this.advance(i, p)
      })
    }
    this.state = LIVE
    // the replay is one write, within the bound on its own; bytes already waiting do not make it overflow
    if (chunks.length > 0) this.writer.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), true)
  }
}

/** the resume point of a room the id says nothing readable about: a gap, with every retained event */
const UNREADABLE = formatId(UNKNOWN_EPOCH, 0)
const UNKNOWN_POSITION = UNREADABLE

function parsePosition (id: string): StreamPosition & { id: string } {
  const dash = id.lastIndexOf('-')
  return { epoch: id.slice(0, dash), offset: Number(id.slice(dash + 1)), id }
}
