import type { WebSocket } from 'ws'
import type { z } from 'zod'
import { afterCorkedFlush, corkForTick, isCorkedForTick } from '../io/cork.js'
import type { GatewayUser } from '../auth/user.js'
import type { RoomRegistry } from '../rooms/registry.js'
import { encodeFor, isPromise, type Member, type RoomEvent } from '../rooms/types.js'
import { formatId } from '../rooms/ids.js'
import type { TokenBucket } from '../limits/token-bucket.js'
import type { DisconnectReason } from '../metrics/counters.js'
import type { AddressRates } from './rates.js'
import { MAX_JSON_DEPTH, isTooDeep, tooDeepMessage } from '../json.js'
import { expiresAt, expiryWheel, refreshAt, type Expiring } from '../expiry.js'
import { textFrame, wsEventEncoder, type WireFrame } from './frame.js'
import { formatIssues } from '../options.js'
import {
  AuthFrame, PingFrame, ServerFrames, helloJson, opSchema, readEnvelope, type ErrorCode, type Ref
} from './protocol.js'

/** `{"op":"refresh","token"}`: a new token for the same user before the current one expires (docs/protocol.md) */
const RefreshFrame = opSchema('refresh', { token: AuthFrame.shape.token })

/**
 * One client connection of a socket gateway (ws, rtc): the mechanics every such gateway shares, free of Fastify.
 *
 * - inbound: size limit (error TOO_LARGE, close 1009), token-bucket rate limit (error RATE_LIMITED; close 1008 on
 *   sustained abuse), then a strictly ordered queue: frames are handled one after another, an async handler (auth,
 *   an async authorizer, a bus round trip) holds the frames behind it, none is dropped or reordered;
 * - parsing: JSON object with a string `op`, the op's zod schema, BAD_MESSAGE with the frame's `ref` echoed;
 * - built-in ops: `auth` (first frame only) and `ping`; the gateway supplies every other op;
 * - outbound: `event` frames are written frame-once (the same Buffer to every member's socket); a socket whose send buffer passes `sendBufferBytes` is
 *   closed with 1013 and leaves its rooms at once, so a slow reader neither grows memory without bound nor delays
 *   anyone else;
 * - a `Member` of the room registry (`member`), with resume without gap or duplicate (`joinRoom(room, { since })`).
 *
 * Memory: what every connection of a route shares (limits, ops, hooks, logger) lives once in a `ConnectionContext`;
 * a connection holds only its own state (docs/ws.md, "Performance").
 */

export interface ConnectionLimits {
  /** largest inbound frame in bytes (close 1009 above it) */
  maxPayload: number
  /** frames per second a connection may send, sustained */
  ratePerSec: number
  /** frames a connection may send in a burst */
  rateBurst: number
  /** bytes a connection may have waiting to be sent before it is closed with 1013 */
  sendBufferBytes: number
  /** inbound bytes per second a connection may send, sustained (every frame counts); absent: no byte limit */
  bytesPerSec?: number
  /** inbound bytes a connection may send in a burst; at least `maxPayload` (one largest frame always fits) */
  bytesBurst?: number
}

/** The part of a pino logger this module uses. */
export interface ConnectionLog {
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

/**
 * A gateway's op: its zod schema (build it with `opSchema`) and its handler. The handler gets the parsed frame and
 * the frame's `ref`; returning a promise holds the connection's later frames until it settles. A handler answers
 * with `conn.send(...)`/`conn.fail(...)`; an exception it does not catch closes the connection with 1011.
 */
export interface OpHandler<F = unknown> {
  schema: z.ZodType<F>
  handle (frame: F, conn: SocketConnection, ref: Ref | undefined): void | Promise<void>
}

/** What every connection of one route shares; build it once per route with `new ConnectionContext(...)`. */
export interface SocketConnectionOptions {
  /** member transport name: 'ws', 'rtc' */
  transport: string
  registry: RoomRegistry
  limits: ConnectionLimits
  /** the gateway's ops; `auth` is built in, `ping` is built in unless given here */
  ops: Record<string, OpHandler>
  /**
   * verifies the token of an `auth` or `refresh` frame, with the connection's upgrade request; absent: auth is not
   * configured, everyone is anonymous (and the connection keeps no request)
   */
  authenticate?: (token: string, request: unknown) => Promise<GatewayUser | null> | GatewayUser | null
  /** a direct message for this member (registry.direct), e.g. an rtc signal */
  onDirect?: (conn: SocketConnection, message: unknown) => void
  /** called once when the connection stops being a member (close started or socket gone), with the rooms it left */
  onEnd?: (conn: SocketConnection, rooms: string[]) => void
  /**
   * the join rule, asked again for every room when a `refresh` changes the user's token: rooms the new token does not
   * allow are left (`left` frame); absent: a refresh keeps every room
   */
  authorizeJoin?: (user: GatewayUser | null, room: string) => boolean | Promise<boolean>
  /** told about a room the connection left because a refreshed token no longer allows it (rtc tells the peers) */
  onRevoked?: (conn: SocketConnection, room: string) => void
  /** the byte budgets shared by the connections of one client address (`AddressRates.acquire`/`release`) */
  rates?: AddressRates
  /** the route's logger; every line names the connection (`conn`) */
  log: ConnectionLog
}

/** The shared part of a route's connections: its options, the op table built once, derived bounds. */
export class ConnectionContext {
  readonly ops: ReadonlyMap<string, OpHandler>
  /** sustained rate of the strike bucket: refused frames draw on it; when it is empty too, the abuse is sustained */
  readonly strikeRate: number
  /** burst of the per-connection byte bucket (at least one largest frame) */
  readonly bytesBurst: number
  /** bytes of the frames a connection may hold waiting behind an async handler */
  readonly maxPendingBytes: number

  constructor (readonly options: SocketConnectionOptions) {
    this.ops = new Map(Object.entries({ ping: pingOp, ...options.ops }))
    this.strikeRate = Math.max(options.limits.ratePerSec / 10, 0.1)
    this.bytesBurst = Math.max(options.limits.bytesBurst ?? 0, options.limits.maxPayload)
    this.maxPendingBytes = Math.max(options.limits.bytesBurst ?? 0, 4 * options.limits.maxPayload)
  }
}

/** What is a connection's own: its member id, its user, where it came from. */
export interface ConnectionInit {
  /** the member id (`registry.nextMemberId()`), sent as `hello.conn` */
  id: string
  /** the user authenticated before the upgrade, or null */
  user: GatewayUser | null
  /** the client's address (the key of its shared byte budget) */
  address: string
  /** the upgrade request, handed to `authenticate` with the token of an `auth`/`refresh` frame (kept only then) */
  request?: unknown
}

const OPEN = 1
/** metrics: why a connection the server closed ended, by close code (anything else the server closes is an error) */
const CLOSE_REASONS: Record<number, DisconnectReason> = { 1001: 'shutdown', 1008: 'rate_limited', 1009: 'too_large', 1013: 'slow_consumer' }
/** frames accepted by the rate limit but not yet handled, while an async handler runs */
const MAX_PENDING = 256

/** A stream `event` frames can be written to raw (ws's `_socket`: a net.Socket, or a Duplex under `injectWS`). */
interface RawStream { write (chunk: Buffer): boolean, cork?: () => void, uncork?: () => void }

export class SocketConnection {
  readonly id: string
  readonly member: Member<WireFrame>
  /** false once a server ping went unanswered for a whole interval */
  alive = true
  private currentUser: GatewayUser | null
  private readonly joined = new Set<string>()
  private readonly options: SocketConnectionOptions
  /** token buckets, inline (docs/ws.md, "Performance"): frames, refused frames (strikes), bytes; refilled at `refilledAt` */
  private frameTokens: number
  private strikeTokens: number
  private byteTokens: number
  private refilledAt: number
  private readonly addressBytes: TokenBucket | null
  /** the client's address (the key of its shared byte budget and of the per-address connection count) */
  readonly address: string
  private readonly request: unknown
  /** frames accepted by the rate limit while an async handler runs; created on first need */
  private pending: Array<Buffer | null> | null = null
  private readonly raw: RawStream | null
  private resuming: Map<string, RoomEvent[]> | null = null
  /** bytes of the live events held back while resumes run */
  private resumingBytes = 0
  /** bytes of the frames waiting in `pending` (bound: the context's `maxPendingBytes`) */
  private pendingBytes = 0
  private busy = false
  private gotFrame = false
  private ended = false
  private state: Record<string, unknown> | null = null
  /** metrics: the first cause of the end seen; 'client' when the peer closed or vanished */
  private endReason: DisconnectReason | null = null
  /** when the user's token expires (ms), and whether the client was asked to refresh it */
  private expiry: number | null = null
  private refreshAsked = false
  private expiring: Expiring | null = null

  constructor (readonly socket: WebSocket, private readonly context: ConnectionContext, init: ConnectionInit) {
    const options = context.options
    this.options = options
    this.id = init.id
    this.currentUser = init.user
    const { rateBurst, bytesPerSec } = options.limits
    this.frameTokens = rateBurst
    this.strikeTokens = rateBurst
    this.byteTokens = bytesPerSec === undefined ? 0 : context.bytesBurst
    this.refilledAt = Date.now()
    this.address = init.address
    this.addressBytes = options.rates === undefined ? null : options.rates.acquire(init.address)
    this.request = options.authenticate === undefined ? undefined : init.request
    // Frame-once needs the raw stream under ws and a socket without per-message compression.
    const rawSocket = (socket as unknown as { _socket?: { write?: unknown } })._socket
    this.raw = socket.extensions === '' && typeof rawSocket?.write === 'function'
      ? rawSocket as RawStream
      : null
    this.member = options.onDirect === undefined ? new ConnectionMember(this) : new DirectMember(this, options.onDirect)
    // metrics: counted open here and closed in end(); socket errors come through `socketError`
    options.registry.counters.connectionOpened(options.transport)
  }

  /** free slot for the gateway's per-connection state (created on first use) */
  get data (): Record<string, unknown> {
    return (this.state ??= {})
  }

  /** member transport name */
  get transport (): string {
    return this.options.transport
  }

  /**
   * An `error` of the socket (the route's shared listener calls it): kept as the end reason for the metrics; a frame
   * over ws's own limit arrives this way.
   */
  socketError (err: Error & { code?: string }): void {
    this.endReason ??= err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'too_large' : 'error'
  }

  get user (): GatewayUser | null {
    return this.currentUser
  }

  /** rooms this connection is in */
  get rooms (): ReadonlySet<string> {
    return this.joined
  }

  /** false once closing started or the socket is gone */
  get open (): boolean {
    return !this.ended && this.socket.readyState === OPEN
  }

  get registry (): RoomRegistry {
    return this.options.registry
  }

  /** Sends `hello`; call once, right after the upgrade. */
  start (): void {
    this.sendText(helloJson(this.id, this.currentUser?.id ?? null))
    this.trackExpiry()
  }

  /** Takes one inbound frame from the socket's `message` event. */
  receive (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.ended) return
    this.alive = true
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    const limits = this.options.limits
    if (bytes.length > limits.maxPayload) {
      this.fail('TOO_LARGE', `a frame may have at most ${limits.maxPayload} bytes`)
      this.close(1009, 'frame too large')
      return
    }
    this.refill()
    // frames, then bytes: the connection's own budget, then its address's (shared by all its connections); each
    // budget a frame got through is spent, as with separate buckets
    let limited: string | null = null
    if (this.frameTokens < 1) {
      limited = `at most ${limits.ratePerSec} frames per second`
    } else {
      this.frameTokens -= 1
      if (limits.bytesPerSec !== undefined && this.byteTokens < bytes.length) {
        limited = `at most ${limits.bytesPerSec} bytes per second`
      } else {
        if (limits.bytesPerSec !== undefined) this.byteTokens -= bytes.length
        if (this.addressBytes !== null && !this.addressBytes.take(bytes.length)) limited = 'too many bytes per second from this address'
      }
    }
    if (limited !== null) {
      const ref = isBinary ? undefined : readEnvelope(bytes.toString('utf8')).ref
      this.fail('RATE_LIMITED', limited, ref)
      if (this.strikeTokens < 1) this.close(1008, 'rate limit exceeded')
      else this.strikeTokens -= 1
      return
    }
    const frame = isBinary ? null : bytes
    if (!this.busy && (this.pending === null || this.pending.length === 0)) {
      // nothing waiting: handled now, without a queue
      this.run(frame)
      if (this.busy || this.ended) return
      this.drain()
      return
    }
    const pending = this.pending ??= []
    if (pending.length >= MAX_PENDING || this.pendingBytes + bytes.length > this.context.maxPendingBytes) {
      this.close(1008, 'too many frames waiting')
      return
    }
    pending.push(frame)
    if (frame !== null) this.pendingBytes += frame.length
    if (!this.busy) this.drain()
  }

  /** Refills the token buckets for the time since the last frame. */
  private refill (): void {
    const now = Date.now()
    const seconds = (now - this.refilledAt) / 1000
    if (seconds <= 0) return
    this.refilledAt = now
    const limits = this.options.limits
    this.frameTokens = Math.min(limits.rateBurst, this.frameTokens + seconds * limits.ratePerSec)
    this.strikeTokens = Math.min(limits.rateBurst, this.strikeTokens + seconds * this.context.strikeRate)
    if (limits.bytesPerSec !== undefined) this.byteTokens = Math.min(this.context.bytesBurst, this.byteTokens + seconds * limits.bytesPerSec)
  }

  /** Sends one JSON frame (not for `event` frames, which go through `deliverFrame`). */
  send (frame: object): boolean {
    if (!this.open) return false
    return this.sendText(JSON.stringify(frame))
  }

  /** Sends one frame of JSON text; this tick's `event` frames leave first (the order the client sees is kept). */
  private sendText (text: string): boolean {
    if (!this.open) return false
    if (this.raw !== null) this.raw.write(textFrame(text).frame)
    else this.socket.send(text)
    return this.checkBuffer()
  }

  /** Sends an `error` frame. */
  fail (code: ErrorCode, message: string, ref?: Ref): void {
    this.send(ServerFrames.error(code, message, ref))
  }

  /**
   * Writes one pre-framed `event` (the same Buffer every member gets). The send buffer is judged after the tick's
   * flush (`checkBuffer`); a connection already holding twice its bound unsent (many events in one tick, a resume)
   * is closed with 1013 at once instead of taking more: what one connection keeps in memory stays bounded.
   */
  deliverFrame (wire: WireFrame): void {
    if (!this.open) return
    if (this.socket.bufferedAmount > 2 * this.options.limits.sendBufferBytes) {
      this.slowReader()
      return
    }
    if (this.raw !== null) {
      corkForTick(this.raw)
      this.raw.write(wire.frame)
    } else {
      this.socket.send(wire.payload, { binary: false })
    }
    this.checkBuffer()
  }

  /**
   * Joins `room` in the registry. With `since`, the retained events after it are replayed right after `announce`
   * with no gap to the live events and no duplicate; `announce(recovered)` sends the gateway's `joined` frame
   * (`recovered` is undefined without `since`). Already a member: only `announce()` runs; returns false.
   */
  async joinRoom (room: string, options: { since?: string, announce: (recovered?: boolean, position?: string) => void }): Promise<boolean> {
    if (this.joined.has(room)) {
      options.announce(undefined, this.positionOf(room))
      return false
    }
    if (this.ended) return false
    this.joined.add(room)
    this.options.registry.join(room, this.member)
    const since = options.since
    // a room new to this instance starts by reading its position (docs/scale-out.md): `joined` waits for it, so
    // whatever the client causes after `joined` is published after that position and reaches it
    const started = since === undefined ? this.options.registry.position(room) : undefined
    if (since === undefined && !isPromise(started)) {
      options.announce(undefined, this.positionOf(room))
      return true
    }
    const buffered: RoomEvent[] = []
    this.resuming ??= new Map()
    this.resuming.set(room, buffered)
    let history: { events: RoomEvent[], recovered: boolean } = { events: [], recovered: true }
    if (since === undefined) {
      await (started as Promise<unknown>).catch(() => {})
    } else {
      try {
        history = await this.options.registry.history(room, since)
      } catch (err) {
        this.options.log.warn({ err, room, conn: this.id }, 'history lookup failed: resume reported as not recovered')
        history = { events: [], recovered: false }
      }
    }
    // from here on synchronous: nothing can be published in between
    this.resuming.delete(room)
    if (this.resuming.size === 0) {
      this.resuming = null
      this.resumingBytes = 0
    }
    if (this.ended) return true
    const replayed = new Set<string>()
    const frames: WireFrame[] = []
    for (const event of history.events) {
      replayed.add(event.id)
      frames.push(encodeFor(event, wsEventEncoder))
    }
    for (const event of buffered) {
      if (!replayed.has(event.id)) frames.push(encodeFor(event, wsEventEncoder))
    }
    // a replay larger than the send buffer keeps its newest events: the resume is reported as not recovered (the
    // client knows events are missing) rather than sent whole into a buffer it would overflow on every reconnect
    let bytes = 0
    let first = frames.length
    while (first > 0 && bytes + frames[first - 1].frame.length <= this.options.limits.sendBufferBytes) {
      bytes += frames[--first].frame.length
    }
    options.announce(since === undefined ? undefined : history.recovered && first === 0, this.positionOf(room))
    for (let i = first; i < frames.length; i++) this.deliverFrame(frames[i])
    return true
  }

  /**
   * The room's position as this connection's `joined` goes out (an id a later join may give as `since`): events
   * after it reach the connection live; with a resume, the replayed ones (up to it) follow `joined`.
   */
  private positionOf (room: string): string | undefined {
    const position = this.options.registry.position(room)
    return isPromise(position) ? undefined : formatId(position.epoch, position.offset)
  }

  /** Leaves `room`; false when this connection was not in it. */
  leaveRoom (room: string): boolean {
    if (!this.joined.delete(room)) return false
    this.options.registry.leave(room, this.member)
    return true
  }

  /** Starts the closing handshake with `code`; the connection leaves its rooms at once and handles no more frames. */
  close (code: number, reason = ''): void {
    if (!this.ended) this.endReason ??= CLOSE_REASONS[code] ?? 'error'
    if (this.end()) this.socket.close(code, reason)
  }

  /** Ends the connection without a closing handshake (dead peer). */
  terminate (): void {
    this.end()
    this.socket.terminate()
  }

  /** The server's ping tick: a connection that answered nothing since the last tick is terminated. */
  heartbeat (): void {
    if (this.ended) return
    if (!this.alive) {
      this.options.log.debug({ conn: this.id }, 'peer did not answer the ping: terminated')
      this.endReason ??= 'ping_timeout'
      this.terminate()
      return
    }
    this.alive = false
    this.socket.ping()
  }

  /** Leaves every room and stops handling frames; true the first time. Call from the socket's `close` event too. */
  end (): boolean {
    if (this.ended) return false
    this.ended = true
    this.pending = null
    this.pendingBytes = 0
    this.resuming = null
    if (this.expiring !== null) expiryWheel.cancel(this.expiring)
    const rooms = [...this.joined]
    this.joined.clear()
    this.options.registry.leaveAll(this.member)
    this.options.registry.counters.connectionClosed(this.options.transport, this.endReason ?? 'client')
    if (this.addressBytes !== null) this.options.rates?.release(this.address)
    try {
      this.options.onEnd?.(this, rooms)
    } catch (err) {
      this.options.log.error({ err, conn: this.id }, 'connection end handler failed')
    }
    return true
  }

  /**
   * The registry's delivery of a live event: held back while this room's resume runs (at most a send buffer's worth:
   * past it the client could not take the replay anyway, 1013), else written.
   */
  deliverEvent (wire: WireFrame, event: RoomEvent): void {
    if (this.resuming !== null) {
      const buffer = this.resuming.get(event.room)
      if (buffer !== undefined) {
        this.resumingBytes += wire.frame.length
        if (this.resumingBytes > this.options.limits.sendBufferBytes) this.slowReader()
        else buffer.push(event)
        return
      }
    }
    this.deliverFrame(wire)
  }

  /** A client that cannot keep up: closed with 1013, leaving its rooms at once. */
  private slowReader (): void {
    this.options.log.info({ conn: this.id, bufferedAmount: this.socket.bufferedAmount }, 'client reads too slowly: closed with 1013')
    this.close(1013, 'send buffer full')
  }

  /** a buffer verdict waits for this tick's corked flush */
  private checkLater = false

  private checkBuffer (): boolean {
    // within the bound, the bytes corked in this tick included: nothing to judge, now or after the flush (which only
    // ever lowers it); the common case costs one read and no callback
    if (this.socket.bufferedAmount <= this.options.limits.sendBufferBytes) return true
    // corked for this tick, every byte written in it counts as unsent: judge the buffer once they are flushed
    if (this.open && isCorkedForTick(this.raw)) {
      if (!this.checkLater) {
        this.checkLater = true
        afterCorkedFlush(() => {
          this.checkLater = false
          this.checkBuffer()
        })
      }
      return true
    }
    this.slowReader()
    return false
  }

  private drain (): void {
    const pending = this.pending
    while (pending !== null && pending.length > 0 && !this.busy && !this.ended) {
      const data = pending.shift() as Buffer | null
      if (data !== null) this.pendingBytes -= data.length
      this.run(data)
    }
  }

  /** Handles one frame; an async handler holds the frames behind it until it settles. */
  private run (data: Buffer | null): void {
    let result: void | Promise<void>
    try {
      result = this.handle(data)
    } catch (err) {
      this.crash(err)
      return
    }
    if (isPromise(result)) {
      this.busy = true
      result.then(() => {
        this.busy = false
        this.drain()
      }, (err) => {
        this.busy = false
        this.crash(err)
      })
    }
  }

  private handle (data: Buffer | null): void | Promise<void> {
    const first = !this.gotFrame
    this.gotFrame = true
    if (data === null) return this.fail('BAD_MESSAGE', 'binary frames are not accepted: send JSON text')
    const text = data.toString('utf8')
    const envelope = readEnvelope(text)
    if (!envelope.ok) return this.fail('BAD_MESSAGE', envelope.message, envelope.ref)
    const { op, ref } = envelope
    // what follows (validation, JSON.stringify at publish, a signal's size check) recurses: refuse deep nesting first
    if (isTooDeep(envelope.value, MAX_JSON_DEPTH, text.length)) return this.fail('BAD_MESSAGE', tooDeepMessage(), ref)
    if (op === 'auth') return this.auth(envelope.value, ref, first)
    const ops = this.context.ops
    if (op === 'refresh' && !ops.has('refresh')) return this.refresh(envelope.value, ref)
    const handler = ops.get(op)
    if (handler === undefined) return this.fail('BAD_MESSAGE', `unknown op ${JSON.stringify(op.slice(0, 64))}`, ref)
    const parsed = handler.schema.safeParse(envelope.value)
    if (!parsed.success) return this.fail('BAD_MESSAGE', formatIssues(parsed.error.issues, { first: true }), ref)
    return handler.handle(parsed.data, this, ref)
  }

  private auth (value: Record<string, unknown>, ref: Ref | undefined, first: boolean): void | Promise<void> {
    const parsed = AuthFrame.safeParse(value)
    if (!parsed.success) return this.fail('BAD_MESSAGE', formatIssues(parsed.error.issues, { first: true }), ref)
    if (this.currentUser !== null) return this.fail('BAD_MESSAGE', 'already authenticated', ref)
    if (!first) return this.fail('BAD_MESSAGE', 'auth must be the first frame', ref)
    const authenticate = this.options.authenticate
    if (authenticate === undefined) {
      // no authentication configured: everyone is anonymous, a token changes nothing
      this.send(ServerFrames.hello(this.id, null, ref))
      return
    }
    const settle = (user: GatewayUser | null) => {
      if (this.ended) return
      if (user === null) {
        this.refuse('no user for this token', ref)
        return
      }
      this.currentUser = user
      this.send(ServerFrames.hello(this.id, user.id, ref))
      this.trackExpiry()
    }
    const refused = (err: unknown) => {
      this.options.log.info({ conn: this.id, reason: (err as Error)?.message }, 'auth frame refused')
      this.refuse((err as Error)?.message ?? 'invalid token', ref)
    }
    let result: ReturnType<typeof authenticate>
    try {
      result = authenticate(parsed.data.token, this.request)
    } catch (err) {
      return refused(err)
    }
    if (isPromise(result)) return result.then(settle, refused)
    settle(result)
  }

  /**
   * `refresh`: the token of the same user, renewed. The expiry follows the new token; rooms the new token no longer
   * allows are left with a `left` frame; the answer is `refreshed` with the new `exp`. A token that fails, or that
   * names another user, is refused like a bad `auth` (UNAUTHENTICATED, close 1008).
   */
  private refresh (value: Record<string, unknown>, ref: Ref | undefined): void | Promise<void> {
    const parsed = RefreshFrame.safeParse(value)
    if (!parsed.success) return this.fail('BAD_MESSAGE', formatIssues(parsed.error.issues, { first: true }), ref)
    const authenticate = this.options.authenticate
    const current = this.currentUser
    if (authenticate === undefined || current === null) {
      return this.fail('BAD_MESSAGE', 'refresh needs an authenticated connection (send auth first)', ref)
    }
    const settle = async (user: GatewayUser | null) => {
      if (this.ended) return
      if (user === null || user.id !== current.id) {
        this.refuse(user === null ? 'no user for this token' : 'a refreshed token must be for the same user', ref)
        return
      }
      this.currentUser = user
      this.trackExpiry()
      const authorizeJoin = this.options.authorizeJoin
      if (authorizeJoin !== undefined) {
        for (const room of [...this.joined]) {
          let allowed: boolean
          try {
            allowed = await authorizeJoin(user, room) === true
          } catch (err) {
            this.options.log.error({ err, room, conn: this.id }, 'authorizeJoin failed on refresh: room left')
            allowed = false
          }
          if (!allowed && !this.ended && this.leaveRoom(room)) {
            this.options.onRevoked?.(this, room)
            this.send(ServerFrames.left(room))
          }
        }
      }
      const expiry = this.expiry
      this.send(ref === undefined
        ? { op: 'refreshed', exp: expiry === null ? null : expiry / 1000 }
        : { op: 'refreshed', ref, exp: expiry === null ? null : expiry / 1000 })
    }
    const refused = (err: unknown) => {
      this.options.log.info({ conn: this.id, reason: (err as Error)?.message }, 'refresh refused')
      this.refuse((err as Error)?.message ?? 'invalid token', ref)
    }
    let result: ReturnType<typeof authenticate>
    try {
      result = authenticate(parsed.data.token, this.request)
    } catch (err) {
      return refused(err)
    }
    return Promise.resolve(result).then(settle, refused)
  }

  /** (Re)schedules the token's expiry on the shared wheel: a `refresh` request first, then the end. */
  private trackExpiry (): void {
    this.expiry = expiresAt(this.currentUser)
    this.refreshAsked = false
    if (this.expiry === null) {
      if (this.expiring !== null) expiryWheel.cancel(this.expiring)
      return
    }
    this.expiring ??= { due: (now) => this.expiryDue(now) }
    expiryWheel.schedule(this.expiring, refreshAt(this.expiry, Date.now()))
  }

  private expiryDue (now: number): number | null {
    const expiry = this.expiry
    if (this.ended || expiry === null) return null
    if (now >= expiry) {
      this.options.log.info({ conn: this.id, user: this.currentUser?.id }, 'token expired: connection closed with 1008')
      this.fail('UNAUTHENTICATED', 'token expired')
      this.endReason ??= 'unauthenticated'
      this.close(1008, 'token expired')
      return null
    }
    if (!this.refreshAsked) {
      this.refreshAsked = true
      this.send({ op: 'refresh', exp: expiry / 1000 })
    }
    return expiry
  }

  private refuse (message: string, ref: Ref | undefined): void {
    if (this.ended) return
    this.fail('UNAUTHENTICATED', message, ref)
    this.endReason ??= 'unauthenticated'
    this.close(1008, 'unauthenticated')
  }

  private crash (err: unknown): void {
    this.options.log.error({ err, conn: this.id }, 'frame handler failed: connection closed with 1011')
    this.close(1011, 'internal error')
  }
}

/**
 * The connection as a member of the room registry; its user follows a successful `auth` frame. Only a pointer to the
 * connection: the rest are prototype getters (docs/ws.md, "Performance").
 */
class ConnectionMember implements Member<WireFrame> {
  constructor (protected readonly conn: SocketConnection) {}

  get id (): string {
    return this.conn.id
  }

  get transport (): string {
    return this.conn.transport
  }

  get encoder (): typeof wsEventEncoder {
    return wsEventEncoder
  }

  get user (): string | null {
    return this.conn.user?.id ?? null
  }

  deliver (wire: WireFrame, event: RoomEvent): void {
    this.conn.deliverEvent(wire, event)
  }
}

/** A member that takes direct messages (rtc signals): `direct` exists only on these. */
class DirectMember extends ConnectionMember {
  constructor (conn: SocketConnection, private readonly onDirect: (conn: SocketConnection, message: unknown) => void) {
    super(conn)
  }

  direct (message: unknown): void {
    this.onDirect(this.conn, message)
  }
}

const pingOp: OpHandler<PingFrame> = {
  schema: PingFrame,
  handle: (_frame, conn, ref) => { conn.send(ServerFrames.pong(ref)) }
}
