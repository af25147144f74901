import { Backoff } from './core/backoff.js'
import { type CommonOptions, RoomEvents, type ClientStatus, type StatusDetail } from './core/emitter.js'
import { GatewayError, messageOf } from './core/errors.js'
import { ResumeTracker } from './core/resume.js'
import { OPEN, readFrame, refOf, socketClass, stringField, type SocketConstructor, type SocketLike } from './core/socket.js'
import { resolveToken, toSocketUrl, withParams } from './core/urls.js'

export interface ConnectOptions extends CommonOptions {
  /** how the token travels: an `auth` frame (default, keeps it out of URLs and logs) or `?token=` */
  auth?: 'frame' | 'query'
  /** reconnect after the connection drops; default true */
  reconnect?: boolean
  /** give up after this many failed attempts in a row; default Infinity */
  maxRetries?: number
  /** a publish (or leave, or ping) without answer rejects with TIMEOUT after this; default 10000; 0: never */
  ackTimeoutMs?: number
  /** client ping interval; a ping unanswered for a whole interval drops the socket and reconnects; default 25000, 0: off */
  pingMs?: number
  /** frames kept while offline; default 1000 */
  maxQueue?: number
  /** how long close() waits for the closing handshake; default 3000 */
  closeTimeoutMs?: number
  /** a WebSocket class (Node: `import { WebSocket } from 'ws'`); default globalThis.WebSocket */
  WebSocket?: unknown
}

export interface RoomState {
  joined: boolean
  /** the last event id seen in the room: what a rejoin sends as `since` */
  lastId: string | null
  /** `recovered` of the last (re)join that sent `since`, else null */
  recovered: boolean | null
}

/** The answer to `presence(room)`. */
export interface Presence {
  room: string
  /** connections in the room, every transport and instance */
  members: number
  /** distinct authenticated user ids among them (anonymous connections count in `members` only) */
  users: string[]
}

export interface JoinResult {
  room: string
  /** only when `since` was sent: whether every missed event was replayed */
  recovered: boolean | null
}

interface Waiter {
  resolve: (result: JoinResult) => void
  reject: (err: GatewayError) => void
}

interface RoomInfo {
  room: string
  joined: boolean
  everJoined: boolean
  /** the resume point until an event of the room was seen: the position given to join(), then the one `joined` gave */
  since: string | null
  sentSince: string | null
  recovered: boolean | null
  ref: string | null
  waiters: Waiter[]
}

/** The frame that answered a request (`ack`, `left`, `pong`, `presence`), or null (a leave settled locally). */
type Answer = Record<string, unknown> | null

interface Pending {
  kind: 'publish' | 'leave' | 'ping' | 'presence' | 'refresh'
  text: string
  resolve: (value: Answer) => void
  reject: (err: GatewayError) => void
  sent: boolean
  timer: ReturnType<typeof setTimeout> | undefined
}

interface Settings {
  auth: 'frame' | 'query'
  reconnect: boolean
  maxRetries: number
  ackTimeoutMs: number
  pingMs: number
  maxQueue: number
  closeTimeoutMs: number
}

/** Opens a `/ws` connection; see GatewayClient. */
export function connect (url: string | URL, options: ConnectOptions = {}): GatewayClient {
  return new GatewayClient(url, options)
}

/**
 * A `/ws` connection (docs/protocol.md): auth by `auth` frame (default) or `?token=`, joins with ack promises,
 * publish resolved by `ack` / rejected by `error` (same `ref`), automatic reconnect with jittered exponential
 * backoff that rejoins every room with `since: <the last id seen in that room>`, a `gap` callback when the server
 * reports `recovered: false`, and no event delivered twice.
 */
export class GatewayClient extends RoomEvents {
  readonly #url: string
  readonly #settings: Settings
  readonly #token: ConnectOptions['token']
  readonly #WebSocket: SocketConstructor
  readonly #backoff: Backoff
  readonly #tracker: ResumeTracker
  readonly #rooms = new Map<string, RoomInfo>()
  readonly #pending = new Map<string, Pending>()
  readonly #outbox: string[] = []
  #socket: SocketLike | null = null
  #live = false
  #status: ClientStatus = 'connecting'
  #refSeq = 0
  #authRef: string | null = null
  #retryTimer: ReturnType<typeof setTimeout> | undefined = undefined
  #pingTimer: ReturnType<typeof setInterval> | undefined = undefined
  #awaitingPong = false
  #closed = false
  #closing: Promise<void> | null = null
  #opening = false
  /** the server's connection id (`hello.conn`) */
  conn: string | null = null
  /** the authenticated user id, null when anonymous, undefined before `hello` */
  user: string | null | undefined = undefined

  constructor (url: string | URL, options: ConnectOptions = {}) {
    super(options)
    this.#url = toSocketUrl(url)
    const auth = options.auth ?? 'frame'
    if (auth !== 'frame' && auth !== 'query') throw new TypeError('auth must be "frame" or "query"')
    this.#settings = {
      auth,
      reconnect: options.reconnect ?? true,
      maxRetries: options.maxRetries ?? Infinity,
      ackTimeoutMs: options.ackTimeoutMs ?? 10_000,
      pingMs: options.pingMs ?? 25_000,
      maxQueue: options.maxQueue ?? 1000,
      closeTimeoutMs: options.closeTimeoutMs ?? 3000
    }
    this.#token = options.token
    this.#WebSocket = socketClass(options.WebSocket)
    this.#backoff = new Backoff(options.backoff)
    this.#tracker = new ResumeTracker(options.dedupeWindow === undefined ? {} : { window: options.dedupeWindow })
    void this.#open()
  }

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get status (): ClientStatus {
    return this.#status
  }

  /** the URL connected to (without token) */
  get url (): string {
    return this.#url
  }

  /** Rooms asked for: `room -> { joined, lastId, recovered }` (`recovered`: of the last (re)join that sent `since`). */
  get rooms (): Map<string, RoomState> {
    const out = new Map<string, RoomState>()
    for (const [name, info] of this.#rooms) {
      out.set(name, { joined: info.joined, lastId: this.#tracker.lastId(name), recovered: info.recovered })
    }
    return out
  }

  /** `recovered` of the last rejoin of `room` with `since`: true, false, or null (not resumed / unknown room). */
  recovered (room: string): boolean | null {
    return this.#rooms.get(room)?.recovered ?? null
  }

  /**
   * Joins `room` now or as soon as the connection is up; the room is rejoined after every reconnect. Resolves
   * `{ room, recovered }` at `joined`; rejects with the server's error (`FORBIDDEN`, ...). `since` resumes from an
   * id of that room (one seen earlier, e.g. kept across page loads).
   */
  join (room: string, options: { since?: string } = {}): Promise<JoinResult> {
    if (this.#closed) return Promise.reject(new GatewayError('CLOSED', 'the client is closed', { room }))
    let info = this.#rooms.get(room)
    if (info !== undefined) {
      if (info.joined) return Promise.resolve({ room, recovered: info.recovered })
    } else {
      info = { room, joined: false, everJoined: false, since: options.since ?? null, sentSince: null, recovered: null, ref: null, waiters: [] }
      this.#rooms.set(room, info)
      if (this.#live) this.#sendJoin(info)
    }
    const waiting = info
    const joined = new Promise<JoinResult>((resolve, reject) => { waiting.waiters.push({ resolve, reject }) })
    // `client.join(room)` without await is normal use: a refusal also reaches onError, so none goes unhandled
    joined.catch(() => {})
    return joined
  }

  /** Leaves `room` (it is no longer rejoined). Resolves at `left`, or at once when not connected. */
  leave (room: string): Promise<void> {
    const info = this.#rooms.get(room)
    if (info === undefined) return Promise.resolve()
    this.#rooms.delete(room)
    this.#tracker.forget(room)
    const cancelled = new GatewayError('LEFT', `room ${room} was left before it was joined`, { room })
    for (const waiter of info.waiters.splice(0)) waiter.reject(cancelled)
    if (!this.#live || info.ref === null) return Promise.resolve()
    const left = this.#request({ op: 'leave', room }, 'leave').then(() => undefined)
    left.catch(() => {})
    return left
  }

  /**
   * Publishes `data` as `event` to `room` (allowed only where the server's CLIENT_PUBLISH_ROOMS permits). Resolves
   * `{ id }` at the server's `ack`, rejects with its `error` (`FORBIDDEN`, `RATE_LIMITED`, ...), with `DISCONNECTED`
   * when the socket closed before the answer (the event may or may not be published), or `TIMEOUT`. While offline
   * the publish waits in a queue and is sent after the reconnect.
   */
  publish (room: string, event: string, data?: unknown, options: { timeoutMs?: number } = {}): Promise<{ id: string }> {
    return this.#request({ op: 'publish', room, event, data: data === undefined ? null : data }, 'publish', options.timeoutMs)
      .then((answer) => ({ id: (answer === null ? undefined : stringField(answer, 'id')) ?? '' }))
  }

  /**
   * Who is in `room` (a room this connection has joined): `{ room, members, users }`, `members` counting the
   * connections of every transport (ws, sse, rtc) on every instance and `users` the distinct authenticated user
   * ids among them. The `presence` op is an extension of the protocol (docs/protocol.md); a server without it
   * answers `BAD_MESSAGE`.
   */
  presence (room: string, options: { timeoutMs?: number } = {}): Promise<Presence> {
    return this.#request({ op: 'presence', room }, 'presence', options.timeoutMs).then((answer) => {
      const members = answer?.members
      const users = answer?.users
      return {
        room,
        members: typeof members === 'number' ? members : 0,
        users: Array.isArray(users) ? users.filter((user): user is string => typeof user === 'string') : []
      }
    })
  }

  /**
   * Sends a fresh token (from the `token` function) for the same user on the live connection, without reconnecting;
   * resolves `{ exp }` (the new expiry in seconds since the epoch, null: none) at `refreshed`. The server asks for
   * this by itself before a token expires (`refresh` op, docs/protocol.md), and the client answers when `token` is a
   * function. Rooms the new token no longer allows are left by the server and reported to `onError` (`FORBIDDEN`).
   * A refused token ends the connection (`UNAUTHENTICATED`, close 1008); the client then reconnects.
   */
  async refresh (options: { timeoutMs?: number } = {}): Promise<{ exp: number | null }> {
    let token: string | null
    try {
      token = await resolveToken(this.#token)
    } catch (err) {
      throw new GatewayError('TOKEN', `the token function failed: ${messageOf(err)}`)
    }
    if (token === null) throw new GatewayError('TOKEN', 'no token to refresh with')
    const answer = await this.#request({ op: 'refresh', token }, 'refresh', options.timeoutMs)
    const exp = answer?.exp
    return { exp: typeof exp === 'number' ? exp : null }
  }

  /** Round trip to the server; resolves with the time in ms. */
  ping (options: { timeoutMs?: number } = {}): Promise<number> {
    const started = Date.now()
    return this.#request({ op: 'ping' }, 'ping', options.timeoutMs).then(() => Date.now() - started)
  }

  /** Closes for good (no reconnect); pending promises reject with `CLOSED`. Resolves once the socket is closed. */
  close (): Promise<void> {
    if (this.#closing !== null) return this.#closing
    this.#closed = true
    clearTimeout(this.#retryTimer)
    this.#stopPing()
    this.#failAll(new GatewayError('CLOSED', 'the client was closed'))
    const socket = this.#socket
    if (socket !== null && socket.readyState < 2) {
      this.#closing = new Promise<void>((resolve) => {
        const done = (code: number, reason: string) => {
          clearTimeout(timer)
          this.#lost(socket, code)
          this.#setStatus('closed', { code, reason })
          resolve()
        }
        // a peer that vanished never completes the closing handshake: stop waiting for it
        const timer = setTimeout(() => { done(1006, 'close timed out') }, this.#settings.closeTimeoutMs)
        socket.onclose = (e) => { done(e.code, e.reason) }
      })
      socket.close(1000, 'client closed')
    } else {
      if (socket !== null) this.#lost(socket, 1000)
      this.#setStatus('closed', {})
      this.#closing = Promise.resolve()
    }
    return this.#closing
  }

  /** Drops the current socket now and reconnects (e.g. after the page came back online, or with a new token). */
  reconnect (): void {
    if (this.#closed || this.#opening) return
    this.#backoff.reset()
    const socket = this.#socket
    if (socket !== null) {
      this.#lost(socket, 4000)
      try {
        socket.close()
      } catch {}
    }
    clearTimeout(this.#retryTimer)
    this.#setStatus('reconnecting', { attempt: 1, delayMs: 0, code: 4000, reason: 'reconnect requested' })
    void this.#open()
  }

  // ---- connection lifecycle ----

  async #open (): Promise<void> {
    this.#retryTimer = undefined
    if (this.#closed) return
    let token: string | null
    this.#opening = true
    try {
      token = await resolveToken(this.#token)
    } catch (err) {
      this.emitError(new GatewayError('TOKEN', `the token function failed: ${messageOf(err)}`))
      this.#retry(0, 'token unavailable')
      return
    } finally {
      this.#opening = false
    }
    if (this.#closed) return
    const url = token !== null && this.#settings.auth === 'query' ? withParams(this.#url, [['token', token]]) : this.#url
    let socket: SocketLike
    try {
      socket = new this.#WebSocket(url)
    } catch (err) {
      this.emitError(new GatewayError('NETWORK', `cannot open ${this.#url}: ${messageOf(err)}`))
      this.#retry(0, 'cannot open')
      return
    }
    this.#socket = socket
    socket.onopen = () => { this.#onOpen(socket, token) }
    socket.onmessage = (e) => { this.#onMessage(socket, e.data) }
    socket.onclose = (e) => { this.#onClose(socket, e.code, e.reason) }
    socket.onerror = () => {} // a close event follows
  }

  #onOpen (socket: SocketLike, token: string | null): void {
    if (socket !== this.#socket) return
    this.#live = true
    this.#awaitingPong = false
    if (token !== null && this.#settings.auth === 'frame') {
      this.#authRef = this.#nextRef()
      this.#send({ op: 'auth', token, ref: this.#authRef })
    } else {
      this.#authRef = null
    }
    // the server holds these behind the async auth: nothing is lost, nothing needs to wait for the answer
    for (const info of this.#rooms.values()) this.#sendJoin(info)
    for (const ref of this.#outbox.splice(0)) {
      const pending = this.#pending.get(ref)
      if (pending === undefined) continue
      pending.sent = true
      this.#sendText(pending.text)
    }
    this.#startPing()
  }

  #onMessage (socket: SocketLike, raw: unknown): void {
    if (socket !== this.#socket) return
    this.#awaitingPong = false
    const frame = readFrame(raw)
    if (frame === null) return
    switch (frame.op) {
      case 'event': this.#onEvent(frame); return
      case 'hello': this.#onHello(frame); return
      case 'joined': this.#onJoined(frame); return
      case 'left': this.#onLeft(frame); return
      case 'ack':
      case 'pong':
      case 'presence':
      case 'refreshed': this.#settle(refOf(frame), frame); return
      case 'refresh': this.#onRefreshAsked(); return
      case 'error': this.#onErrorFrame(frame)
    }
  }

  #onClose (socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return
    this.#lost(socket, code)
    if (this.#closed) {
      this.#setStatus('closed', { code, reason })
      return
    }
    const retries = this.#settings.reconnect ? this.#settings.maxRetries : 0
    if (this.#backoff.attempt >= retries) {
      this.#closed = true
      this.#failAll(new GatewayError('CLOSED', `connection closed (${code}${reason ? ` ${reason}` : ''}) and not reconnecting`))
      this.#closing = Promise.resolve()
      this.#setStatus('closed', { code, reason })
      return
    }
    this.#retry(code, reason)
  }

  /** Rejects every pending join and request with `err` and empties the offline queue. */
  #failAll (err: GatewayError): void {
    for (const info of this.#rooms.values()) for (const waiter of info.waiters.splice(0)) waiter.reject(err)
    for (const [ref, pending] of this.#pending) this.#finish(ref, pending, err)
    this.#outbox.length = 0
  }

  /** The socket is gone: forget it, fail what waited on it. */
  #lost (socket: SocketLike, code: number): void {
    if (socket !== this.#socket) return
    socket.onopen = socket.onmessage = socket.onclose = null
    this.#socket = null
    this.#live = false
    this.#stopPing()
    for (const info of this.#rooms.values()) {
      info.joined = false
      info.ref = null
    }
    const err = new GatewayError('DISCONNECTED', `the connection closed (${code}) before the server answered`)
    for (const [ref, pending] of this.#pending) {
      if (!pending.sent) continue
      // a sent leave is done (a closed connection is in no room); a sent publish may or may not have happened
      if (pending.kind === 'leave') this.#finish(ref, pending, null)
      else this.#finish(ref, pending, err)
    }
  }

  /** Drops a socket that stopped answering without waiting for a close handshake, then reconnects. */
  #drop (code: number, reason: string): void {
    const socket = this.#socket
    if (socket === null) return
    this.#onClose(socket, code, reason)
    try {
      socket.close()
    } catch {}
  }

  #retry (code: number, reason: string): void {
    const attempt = this.#backoff.attempt + 1
    const delayMs = this.#backoff.next()
    this.#setStatus('reconnecting', { attempt, delayMs, code, reason })
    this.#retryTimer = setTimeout(() => { void this.#open() }, delayMs)
  }

  #setStatus (status: ClientStatus, detail: StatusDetail): void {
    if (status === this.#status && status !== 'reconnecting') return
    this.#status = status
    this.emitStatus(status, detail)
  }

  #startPing (): void {
    this.#stopPing()
    const every = this.#settings.pingMs
    if (!(every > 0)) return
    this.#pingTimer = setInterval(() => {
      if (!this.#live) return
      if (this.#awaitingPong) {
        this.#drop(4000, 'no answer to ping')
        return
      }
      this.#awaitingPong = true
      this.#send({ op: 'ping' })
    }, every)
  }

  #stopPing (): void {
    clearInterval(this.#pingTimer)
    this.#pingTimer = undefined
  }

  // ---- frames ----

  #onHello (frame: Record<string, unknown>): void {
    this.conn = stringField(frame, 'conn') ?? null
    this.user = stringField(frame, 'user') ?? null
    if (this.#authRef !== null && frame.ref !== this.#authRef) return // the anonymous hello before our auth frame
    this.#backoff.reset()
    this.#setStatus('open', { conn: this.conn, user: this.user })
  }

  #onEvent (frame: Record<string, unknown>): void {
    const room = stringField(frame, 'room')
    const event = stringField(frame, 'event')
    if (room === undefined || event === undefined || !this.#rooms.has(room)) return
    const id = stringField(frame, 'id') ?? ''
    if (!this.#tracker.accept(room, id)) return
    this.dispatch(event, frame.data, { room, event, id })
  }

  #onJoined (frame: Record<string, unknown>): void {
    const info = this.#rooms.get(stringField(frame, 'room') ?? '')
    if (info === undefined || (frame.ref !== undefined && frame.ref !== info.ref)) return
    info.joined = true
    info.everJoined = true
    const recovered = typeof frame.recovered === 'boolean' ? frame.recovered : null
    info.recovered = recovered
    // the room's position as of `joined` (asked with `position: true`): without `since` everything after it comes
    // live, so it is the resume point until an event of the room arrives; with `since` the replay follows and the
    // tracker takes over from its events
    const position = stringField(frame, 'position')
    if (position !== undefined && info.sentSince === null) info.since = position
    for (const waiter of info.waiters.splice(0)) waiter.resolve({ room: info.room, recovered })
    if (recovered === false) this.emitGap({ room: info.room, since: info.sentSince })
  }

  /** `left`: the answer to our leave, or the server leaving a room by itself (a refreshed token lost it). */
  #onLeft (frame: Record<string, unknown>): void {
    const ref = refOf(frame)
    if (typeof ref === 'string' && this.#pending.has(ref)) {
      this.#settle(ref, frame)
      return
    }
    const room = stringField(frame, 'room')
    const info = room === undefined ? undefined : this.#rooms.get(room)
    if (info === undefined || !info.joined) return
    // not rejoined after a reconnect either: the token no longer allows it
    this.#rooms.delete(info.room)
    this.#tracker.forget(info.room)
    this.emitError(new GatewayError('FORBIDDEN', `the server left room ${info.room}: the token no longer allows it`, { room: info.room }))
  }

  /** The server asks for a fresh token before the current one expires: answer when the token option can give one. */
  #onRefreshAsked (): void {
    if (typeof this.#token !== 'function') return // a fixed token cannot be renewed: the connection ends at expiry
    this.refresh().catch((err: unknown) => {
      if (err instanceof GatewayError && (err.code === 'DISCONNECTED' || err.code === 'CLOSED')) return
      this.emitError(err instanceof GatewayError ? err : new GatewayError('TOKEN', messageOf(err)))
    })
  }

  #onErrorFrame (frame: Record<string, unknown>): void {
    const ref = refOf(frame)
    const err = new GatewayError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error'), ref === undefined ? {} : { ref })
    if (ref !== undefined) {
      for (const info of this.#rooms.values()) {
        if (info.ref !== ref) continue
        // a refused join: the room is dropped, not retried
        this.#rooms.delete(info.room)
        this.#tracker.forget(info.room)
        err.room = info.room
        for (const waiter of info.waiters.splice(0)) waiter.reject(err)
        this.emitError(err)
        return
      }
      const pending = typeof ref === 'string' ? this.#pending.get(ref) : undefined
      if (pending !== undefined) {
        this.#finish(ref as string, pending, pending.kind === 'leave' && err.code === 'NOT_FOUND' ? null : err)
        return
      }
    }
    this.emitError(err)
  }

  #sendJoin (info: RoomInfo): void {
    info.ref = this.#nextRef()
    // the room's own position: the last id seen in it, else the one join() was given; never another room's id
    const since = this.#tracker.lastId(info.room) ?? info.since
    info.sentSince = since
    this.#send(since === null ? { op: 'join', room: info.room, ref: info.ref, position: true } : { op: 'join', room: info.room, ref: info.ref, since, position: true })
  }

  #request (frame: Record<string, unknown>, kind: Pending['kind'], timeoutMs: number = this.#settings.ackTimeoutMs): Promise<Answer> {
    if (this.#closed) return Promise.reject(new GatewayError('CLOSED', 'the client is closed'))
    const ref = this.#nextRef()
    let text: string
    try {
      text = JSON.stringify({ ...frame, ref })
    } catch (err) {
      return Promise.reject(new GatewayError('BAD_MESSAGE', `cannot serialise the frame: ${messageOf(err)}`))
    }
    if (!this.#live && this.#outbox.length >= this.#settings.maxQueue) {
      return Promise.reject(new GatewayError('QUEUE_FULL', `${this.#settings.maxQueue} frames already wait for the connection`))
    }
    return new Promise<Answer>((resolve, reject) => {
      const pending: Pending = { kind, text, resolve, reject, sent: false, timer: undefined }
      if (timeoutMs > 0 && timeoutMs !== Infinity) {
        pending.timer = setTimeout(() => {
          this.#finish(ref, pending, new GatewayError('TIMEOUT', `no answer from the server within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      this.#pending.set(ref, pending)
      if (this.#live) {
        pending.sent = true
        this.#sendText(text)
      } else {
        this.#outbox.push(ref)
      }
    })
  }

  #settle (ref: string | number | undefined, value: Record<string, unknown>): void {
    if (typeof ref !== 'string') return
    const pending = this.#pending.get(ref)
    if (pending === undefined) return
    this.#pending.delete(ref)
    clearTimeout(pending.timer)
    pending.resolve(value)
  }

  #finish (ref: string, pending: Pending, err: GatewayError | null): void {
    if (this.#pending.get(ref) !== pending) return
    this.#pending.delete(ref)
    clearTimeout(pending.timer)
    const queued = this.#outbox.indexOf(ref)
    if (queued !== -1) this.#outbox.splice(queued, 1)
    if (err === null) pending.resolve(null)
    else pending.reject(err)
  }

  #nextRef (): string {
    return `c${++this.#refSeq}`
  }

  #send (frame: Record<string, unknown>): void {
    this.#sendText(JSON.stringify(frame))
  }

  #sendText (text: string): void {
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) socket.send(text)
  }
}
