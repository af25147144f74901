/**
 * fastify-gateways browser client: one dependency-free ES module.
 *
 *   import { connect, subscribe, joinRtc } from '/client.js'
 *
 *   const client = connect('/ws', { token: () => getFreshToken() })
 *   client.on('notification', (data, { room, id }) => { ... })
 *   await client.join('user:42')
 *   const { id } = await client.publish('public:chat', 'message', { text: 'hi' })
 *
 * - `connect()` speaks the `/ws` protocol (CONTRACT section 4): auth by `auth` frame (default) or `?token=`, joins
 *   with ack promises, publish resolved by `ack` / rejected by `error` (same `ref`), automatic reconnect with
 *   jittered exponential backoff that rejoins every room with `since: <last seen id>`, a `gap` callback when the
 *   server reports `recovered: false`, and no event delivered twice.
 * - `subscribe()` reads `/sse` (section 5) with the same `on()`/`onGap()` API: over `EventSource` (the browser
 *   resumes by itself with Last-Event-ID) or over `fetch` (catch-all `on('*')`, token in a header).
 * - `joinRtc()` wraps the `/rtc` signaling protocol (section 6) around `RTCPeerConnection`.
 *
 * The pure parts (Backoff, ResumeTracker, SseParser) are exported for tests and for other transports.
 */
/* global setInterval, clearInterval, TextDecoder, AbortController, queueMicrotask */

// --------------------------------------------------------------------------------------------------------------------
// Errors
// --------------------------------------------------------------------------------------------------------------------

/**
 * An error of the gateway (`code` from the server's `error` frame or HTTP answer) or of the client itself:
 * `DISCONNECTED` (the socket closed before the answer), `TIMEOUT`, `CLOSED` (client closed), `LEFT` (room left
 * while its join was pending), `QUEUE_FULL`, `NETWORK`, `HTTP_<status>`, `TOKEN` (the token function threw).
 */
export class GatewayError extends Error {
  constructor (code, message, details = {}) {
    super(message)
    this.name = 'GatewayError'
    this.code = code
    if (details.status !== undefined) this.status = details.status
    if (details.room !== undefined) this.room = details.room
    if (details.ref !== undefined) this.ref = details.ref
  }
}

// --------------------------------------------------------------------------------------------------------------------
// Pure logic: backoff, resume bookkeeping, SSE parsing
// --------------------------------------------------------------------------------------------------------------------

const BACKOFF_DEFAULTS = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 }

/**
 * The delay before reconnect attempt `attempt` (0 for the first): the ceiling `min(maxMs, baseMs * factor^attempt)`
 * with the last `jitter` fraction of it randomised, so the delay lies in `[ceiling * (1 - jitter), ceiling]`.
 * Clients that lost the same server at the same moment spread out instead of coming back together.
 */
export function backoffDelay (attempt, options = {}, random = Math.random) {
  const { baseMs, maxMs, factor, jitter } = { ...BACKOFF_DEFAULTS, ...options }
  const ceiling = Math.min(maxMs, baseMs * Math.pow(factor, Math.max(0, attempt)))
  const spread = Math.min(Math.max(jitter, 0), 1)
  return ceiling * (1 - spread) + random() * ceiling * spread
}

/** Attempt counter around `backoffDelay`; `reset()` after a good connection. */
export class Backoff {
  constructor (options = {}) {
    const { random, ...rest } = options
    this.options = { ...BACKOFF_DEFAULTS, ...rest }
    this.random = random ?? Math.random
    this.attempt = 0
  }

  /** the delay before the next attempt; counts the attempt */
  next () {
    return backoffDelay(this.attempt++, this.options, this.random)
  }

  reset () {
    this.attempt = 0
  }
}

/**
 * Resume bookkeeping per room: the last event id seen (what a rejoin sends as `since`) and a bounded window of the
 * ids already delivered, so an event replayed after a resume is dropped instead of delivered twice. Ids are opaque:
 * they are only compared for equality, never parsed.
 */
export class ResumeTracker {
  #rooms = new Map()

  constructor (options = {}) {
    /** how many recent ids per room are remembered for dedupe */
    this.window = options.window ?? 1024
    /** the id of the most recent event accepted in any room, or null */
    this.latest = null
  }

  /** Records event `id` of `room`; false when it was already delivered (drop it). An event without id is accepted. */
  accept (room, id) {
    if (typeof id !== 'string' || id === '') return true
    let state = this.#rooms.get(room)
    if (state === undefined) {
      state = { lastId: null, seen: new Set(), order: [] }
      this.#rooms.set(room, state)
    }
    if (state.seen.has(id)) return false
    state.seen.add(id)
    state.order.push(id)
    if (state.order.length > this.window) state.seen.delete(state.order.shift())
    state.lastId = id
    this.latest = id
    return true
  }

  /** true when `id` of `room` was delivered (within the window) */
  seen (room, id) {
    return this.#rooms.get(room)?.seen.has(id) ?? false
  }

  /** the last id seen in `room`, or null */
  lastId (room) {
    return this.#rooms.get(room)?.lastId ?? null
  }

  /**
   * The resume point of `room`: its last id, else the most recent id seen in any room (ids are positions of one
   * sequence across rooms, as for an SSE stream), else null (nothing to resume from).
   */
  since (room) {
    return this.lastId(room) ?? this.latest
  }

  forget (room) {
    this.#rooms.delete(room)
  }
}

/**
 * Incremental `text/event-stream` parser (the WHATWG algorithm): `feed(text)` returns the events completed by that
 * chunk as `{ id, event, data }` (`id` is the last event id in effect, `event` defaults to `message`). `retry` holds
 * the last valid `retry:` value. Lines may end in LF, CR or CRLF, also across chunks; comments are skipped.
 */
export class SseParser {
  #buffer = ''
  #data = []
  #event = ''
  #skipLF = false
  #started = false

  constructor () {
    this.lastEventId = ''
    this.retry = undefined
  }

  feed (chunk) {
    const events = []
    let text = chunk
    if (this.#skipLF && text.length > 0) {
      if (text.charCodeAt(0) === 10) text = text.slice(1)
      this.#skipLF = false
    }
    text = this.#buffer + text
    if (!this.#started && text.length > 0) {
      this.#started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    let pos = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      this.#line(text.slice(pos, i), events)
      if (c === 13) {
        if (i + 1 === text.length) this.#skipLF = true
        else if (text.charCodeAt(i + 1) === 10) i++
      }
      pos = i + 1
    }
    this.#buffer = text.slice(pos)
    return events
  }

  #line (line, events) {
    if (line === '') {
      if (this.#data.length > 0) {
        events.push({ id: this.lastEventId, event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n') })
      }
      this.#data = []
      this.#event = ''
      return
    }
    if (line.charCodeAt(0) === 58) return // ':' comment
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#event = value
    else if (field === 'id') {
      if (!value.includes('\0')) this.lastEventId = value
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) this.retry = Number(value)
    }
  }
}

// --------------------------------------------------------------------------------------------------------------------
// URLs and tokens
// --------------------------------------------------------------------------------------------------------------------

function baseHref () {
  return globalThis.location?.href
}

/** `url` (absolute, or relative to the page) as a ws:/wss: URL; http(s) is turned into ws(s). */
export function toSocketUrl (url, base = baseHref()) {
  const u = new URL(String(url), base)
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${u.href}`)
  return u.href
}

/** `url` (absolute, or relative to the page) as an http:/https: URL; ws(s) is turned into http(s). */
export function toHttpUrl (url, base = baseHref()) {
  const u = new URL(String(url), base)
  if (u.protocol === 'ws:') u.protocol = 'http:'
  else if (u.protocol === 'wss:') u.protocol = 'https:'
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`not an HTTP URL: ${u.href}`)
  return u.href
}

function withParams (url, params) {
  const u = new URL(url)
  for (const [key, value] of params) u.searchParams.append(key, value)
  return u.href
}

/** A token option (string, null, or a function returning one, possibly async) as a string or null. */
async function resolveToken (token) {
  const value = typeof token === 'function' ? await token() : token
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string') throw new TypeError('a token must be a string')
  return value
}

function report (err) {
  // a listener threw: surface it like an uncaught error without breaking the client's own state
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err)
  else queueMicrotask(() => { throw err })
}

async function httpError (response) {
  let message = `HTTP ${response.status}`
  let code = `HTTP_${response.status}`
  try {
    const body = await response.json()
    if (typeof body?.message === 'string') message = body.message
    if (typeof body?.code === 'string') code = body.code
  } catch {}
  return new GatewayError(code, message, { status: response.status })
}

// --------------------------------------------------------------------------------------------------------------------
// Event registration shared by the ws and sse clients
// --------------------------------------------------------------------------------------------------------------------

class RoomEvents {
  #handlers = new Map()
  #hooks = { gap: new Set(), status: new Set(), error: new Set() }

  constructor (options) {
    if (typeof options.onGap === 'function') this.onGap(options.onGap)
    if (typeof options.onStatus === 'function') this.onStatus(options.onStatus)
    if (typeof options.onError === 'function') this.onError(options.onError)
  }

  /**
   * Calls `handler(data, { room, event, id })` for each room event named `event` (`'*'`: every event), only those
   * of `options.room` when given. Returns a function that removes the handler.
   */
  on (event, handler, options = {}) {
    if (typeof event !== 'string' || event === '') throw new TypeError('on(event, handler): event must be a non-empty string')
    if (typeof handler !== 'function') throw new TypeError('on(event, handler): handler must be a function')
    let set = this.#handlers.get(event)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(event, set)
    }
    const entry = { handler, room: options.room ?? null }
    set.add(entry)
    return () => { set.delete(entry) }
  }

  /** Removes `handler` from `event` (every registration of it). */
  off (event, handler) {
    const set = this.#handlers.get(event)
    if (set === undefined) return
    for (const entry of set) if (entry.handler === handler) set.delete(entry)
  }

  /** `fn({ room, since })` when a room's missed events could not all be recovered. */
  onGap (fn) {
    return this.#hook('gap', fn)
  }

  /** `fn(status, detail)` on every status change. */
  onStatus (fn) {
    return this.#hook('status', fn)
  }

  /** `fn(error)` for errors of the connection: a refused auth, a refused join or rejoin, errors without ref, a failed stream. */
  onError (fn) {
    return this.#hook('error', fn)
  }

  get eventNames () {
    return [...this.#handlers.keys()]
  }

  #hook (name, fn) {
    if (typeof fn !== 'function') throw new TypeError(`${name} listener must be a function`)
    this.#hooks[name].add(fn)
    return () => { this.#hooks[name].delete(fn) }
  }

  _emit (name, ...args) {
    for (const fn of [...this.#hooks[name]]) {
      try {
        fn(...args)
      } catch (err) {
        report(err)
      }
    }
  }

  _dispatch (event, data, meta) {
    for (const name of [event, '*']) {
      const set = this.#handlers.get(name)
      if (set === undefined) continue
      for (const entry of [...set]) {
        if (entry.room !== null && entry.room !== meta.room) continue
        try {
          entry.handler(data, meta)
        } catch (err) {
          report(err)
        }
      }
    }
  }
}

// --------------------------------------------------------------------------------------------------------------------
// WebSocket client (/ws)
// --------------------------------------------------------------------------------------------------------------------

const OPEN = 1

/** Opens a `/ws` connection; see GatewayClient. */
export function connect (url, options = {}) {
  return new GatewayClient(url, options)
}

export class GatewayClient extends RoomEvents {
  #url
  #options
  #WebSocket
  #socket = null
  #live = false
  #status = 'connecting'
  #backoff
  #tracker
  #rooms = new Map()
  #pending = new Map()
  #outbox = []
  #refSeq = 0
  #authRef = null
  #retryTimer = null
  #pingTimer = null
  #awaitingPong = false
  #closed = false
  #closing = null
  #opening = false

  constructor (url, options = {}) {
    super(options)
    this.#url = toSocketUrl(url)
    this.#options = {
      auth: 'frame',
      reconnect: true,
      maxRetries: Infinity,
      ackTimeoutMs: 10_000,
      pingMs: 25_000,
      maxQueue: 1000,
      closeTimeoutMs: 3000,
      ...options
    }
    if (this.#options.auth !== 'frame' && this.#options.auth !== 'query') throw new TypeError('auth must be "frame" or "query"')
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket
    if (typeof this.#WebSocket !== 'function') throw new TypeError('no WebSocket implementation: pass options.WebSocket')
    this.#backoff = new Backoff(options.backoff)
    this.#tracker = new ResumeTracker({ window: options.dedupeWindow })
    /** the server's connection id (`hello.conn`) */
    this.conn = null
    /** the authenticated user id, null when anonymous, undefined before `hello` */
    this.user = undefined
    this.#open()
  }

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get status () {
    return this.#status
  }

  /** the URL connected to (without token) */
  get url () {
    return this.#url
  }

  /** Rooms asked for: `room -> { joined, lastId, recovered }` (`recovered`: of the last (re)join that sent `since`). */
  get rooms () {
    const out = new Map()
    for (const [name, info] of this.#rooms) {
      out.set(name, { joined: info.joined, lastId: this.#tracker.lastId(name), recovered: info.recovered })
    }
    return out
  }

  /** `recovered` of the last rejoin of `room` with `since`: true, false, or null (not resumed / unknown room). */
  recovered (room) {
    return this.#rooms.get(room)?.recovered ?? null
  }

  /**
   * Joins `room` now or as soon as the connection is up; the room is rejoined after every reconnect. Resolves
   * `{ room, recovered }` at `joined`; rejects with the server's error (`FORBIDDEN`, ...). `since` resumes from an id.
   */
  join (room, options = {}) {
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
    const joined = new Promise((resolve, reject) => { waiting.waiters.push({ resolve, reject }) })
    // `client.join(room)` without await is normal use: a refusal also reaches onError, so none goes unhandled
    joined.catch(() => {})
    return joined
  }

  /** Leaves `room` (it is no longer rejoined). Resolves at `left`, or at once when not connected. */
  leave (room) {
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
  publish (room, event, data, options = {}) {
    return this.#request({ op: 'publish', room, event, data: data === undefined ? null : data }, 'publish', options.timeoutMs)
  }

  /** Round trip to the server; resolves with the time in ms. */
  ping (options = {}) {
    const started = Date.now()
    return this.#request({ op: 'ping' }, 'ping', options.timeoutMs).then(() => Date.now() - started)
  }

  /** Closes for good (no reconnect); pending promises reject with `CLOSED`. Resolves once the socket is closed. */
  close () {
    if (this.#closing !== null) return this.#closing
    this.#closed = true
    clearTimeout(this.#retryTimer)
    this.#stopPing()
    const err = new GatewayError('CLOSED', 'the client was closed')
    for (const info of this.#rooms.values()) for (const waiter of info.waiters.splice(0)) waiter.reject(err)
    for (const [ref, pending] of this.#pending) this.#finish(ref, pending, err)
    this.#outbox.length = 0
    const socket = this.#socket
    if (socket !== null && socket.readyState < 2) {
      this.#closing = new Promise((resolve) => {
        let timer = null
        const done = (code, reason) => {
          clearTimeout(timer)
          this.#lost(socket, code)
          this.#setStatus('closed', { code, reason })
          resolve()
        }
        socket.onclose = (e) => { done(e.code, e.reason) }
        // a peer that vanished never completes the closing handshake: stop waiting for it
        timer = setTimeout(() => { done(1006, 'close timed out') }, this.#options.closeTimeoutMs)
      })
      socket.close(1000, 'client closed')
    } else {
      if (socket !== null) this.#lost(socket, 1000)
      this.#setStatus('closed', {})
      this.#closing = Promise.resolve()
    }
    return this.#closing
  }

  /** Drops the current socket now and reconnects (e.g. after the page came back online). */
  reconnect () {
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
    this.#open()
  }

  // ---- connection lifecycle ----

  async #open () {
    this.#retryTimer = null
    if (this.#closed) return
    let token
    this.#opening = true
    try {
      token = await resolveToken(this.#options.token)
    } catch (err) {
      this._emit('error', new GatewayError('TOKEN', `the token function failed: ${err?.message ?? err}`))
      this.#retry(0, 'token unavailable')
      return
    } finally {
      this.#opening = false
    }
    if (this.#closed) return
    const url = token !== null && this.#options.auth === 'query' ? withParams(this.#url, [['token', token]]) : this.#url
    let socket
    try {
      socket = new this.#WebSocket(url)
    } catch (err) {
      this._emit('error', new GatewayError('NETWORK', `cannot open ${this.#url}: ${err?.message ?? err}`))
      this.#retry(0, 'cannot open')
      return
    }
    this.#socket = socket
    socket.onopen = () => { this.#onOpen(socket, token) }
    socket.onmessage = (e) => { this.#onMessage(socket, e.data) }
    socket.onclose = (e) => { this.#onClose(socket, e.code, e.reason) }
    socket.onerror = () => {} // a close event follows
  }

  #onOpen (socket, token) {
    if (socket !== this.#socket) return
    this.#live = true
    this.#awaitingPong = false
    if (token !== null && this.#options.auth === 'frame') {
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

  #onMessage (socket, raw) {
    if (socket !== this.#socket) return
    this.#awaitingPong = false
    let frame
    try {
      frame = JSON.parse(typeof raw === 'string' ? raw : String(raw))
    } catch {
      return
    }
    if (frame === null || typeof frame !== 'object') return
    switch (frame.op) {
      case 'event': return this.#onEvent(frame)
      case 'hello': return this.#onHello(frame)
      case 'joined': return this.#onJoined(frame)
      case 'left':
      case 'ack':
      case 'pong': return this.#settle(frame.ref, frame.op === 'ack' ? { id: frame.id } : undefined)
      case 'error': return this.#onErrorFrame(frame)
    }
  }

  #onClose (socket, code, reason) {
    if (socket !== this.#socket) return
    this.#lost(socket, code)
    if (this.#closed) {
      this.#setStatus('closed', { code, reason })
      return
    }
    const retries = this.#options.reconnect ? this.#options.maxRetries : 0
    if (this.#backoff.attempt >= retries) {
      const err = new GatewayError('CLOSED', `connection closed (${code}${reason ? ` ${reason}` : ''}) and not reconnecting`)
      this.#closed = true
      for (const info of this.#rooms.values()) for (const waiter of info.waiters.splice(0)) waiter.reject(err)
      for (const [ref, pending] of this.#pending) this.#finish(ref, pending, err)
      this.#outbox.length = 0
      this.#closing = Promise.resolve()
      this.#setStatus('closed', { code, reason })
      return
    }
    this.#retry(code, reason)
  }

  /** The socket is gone: forget it, fail what waited on it. */
  #lost (socket, code) {
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
  #drop (code, reason) {
    const socket = this.#socket
    if (socket === null) return
    this.#onClose(socket, code, reason)
    try {
      socket.close()
    } catch {}
  }

  #retry (code, reason) {
    const attempt = this.#backoff.attempt + 1
    const delayMs = this.#backoff.next()
    this.#setStatus('reconnecting', { attempt, delayMs, code, reason })
    this.#retryTimer = setTimeout(() => { this.#open() }, delayMs)
  }

  #setStatus (status, detail) {
    if (status === this.#status && status !== 'reconnecting') return
    this.#status = status
    this._emit('status', status, detail)
  }

  #startPing () {
    this.#stopPing()
    const every = this.#options.pingMs
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

  #stopPing () {
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer)
    this.#pingTimer = null
  }

  // ---- frames ----

  #onHello (frame) {
    this.conn = frame.conn ?? null
    this.user = frame.user ?? null
    if (this.#authRef !== null && frame.ref !== this.#authRef) return // the anonymous hello before our auth frame
    this.#backoff.reset()
    this.#setStatus('open', { conn: this.conn, user: this.user })
  }

  #onEvent (frame) {
    const { room, event, id } = frame
    if (!this.#rooms.has(room)) return
    if (!this.#tracker.accept(room, id)) return
    this._dispatch(event, frame.data, { room, event, id })
  }

  #onJoined (frame) {
    const info = this.#rooms.get(frame.room)
    if (info === undefined || (frame.ref !== undefined && frame.ref !== info.ref)) return
    info.joined = true
    info.everJoined = true
    info.since = null
    const recovered = typeof frame.recovered === 'boolean' ? frame.recovered : null
    info.recovered = recovered
    for (const waiter of info.waiters.splice(0)) waiter.resolve({ room: info.room, recovered })
    if (recovered === false) this._emit('gap', { room: info.room, since: info.sentSince })
  }

  #onErrorFrame (frame) {
    const err = new GatewayError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error'), { ref: frame.ref })
    if (frame.ref !== undefined) {
      for (const info of this.#rooms.values()) {
        if (info.ref !== frame.ref) continue
        // a refused join: the room is dropped, not retried
        this.#rooms.delete(info.room)
        this.#tracker.forget(info.room)
        err.room = info.room
        for (const waiter of info.waiters.splice(0)) waiter.reject(err)
        this._emit('error', err)
        return
      }
      const pending = this.#pending.get(frame.ref)
      if (pending !== undefined) {
        this.#finish(frame.ref, pending, pending.kind === 'leave' && err.code === 'NOT_FOUND' ? null : err)
        return
      }
    }
    this._emit('error', err)
  }

  #sendJoin (info) {
    info.ref = this.#nextRef()
    const since = info.everJoined ? this.#tracker.since(info.room) : info.since
    info.sentSince = since
    const frame = { op: 'join', room: info.room, ref: info.ref }
    if (since !== null && since !== undefined) frame.since = since
    this.#send(frame)
  }

  #request (frame, kind, timeoutMs = this.#options.ackTimeoutMs) {
    if (this.#closed) return Promise.reject(new GatewayError('CLOSED', 'the client is closed'))
    const ref = this.#nextRef()
    let text
    try {
      text = JSON.stringify({ ...frame, ref })
    } catch (err) {
      return Promise.reject(new GatewayError('BAD_MESSAGE', `cannot serialise the frame: ${err?.message ?? err}`))
    }
    if (!this.#live && this.#outbox.length >= this.#options.maxQueue) {
      return Promise.reject(new GatewayError('QUEUE_FULL', `${this.#options.maxQueue} frames already wait for the connection`))
    }
    return new Promise((resolve, reject) => {
      const pending = { kind, text, resolve, reject, sent: false, timer: null }
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

  #settle (ref, value) {
    if (ref === undefined) return
    const pending = this.#pending.get(ref)
    if (pending === undefined) return
    this.#pending.delete(ref)
    clearTimeout(pending.timer)
    pending.resolve(value)
  }

  #finish (ref, pending, err) {
    if (this.#pending.get(ref) !== pending) return
    this.#pending.delete(ref)
    clearTimeout(pending.timer)
    const queued = this.#outbox.indexOf(ref)
    if (queued !== -1) this.#outbox.splice(queued, 1)
    if (err === null) pending.resolve(undefined)
    else pending.reject(err)
  }

  #nextRef () {
    return `c${++this.#refSeq}`
  }

  #send (frame) {
    this.#sendText(JSON.stringify(frame))
  }

  #sendText (text) {
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) socket.send(text)
  }
}

// --------------------------------------------------------------------------------------------------------------------
// Server-Sent Events (/sse)
// --------------------------------------------------------------------------------------------------------------------

/** Subscribes to `rooms` over `/sse`; see SseSubscription. */
export function subscribe (url, rooms, options = {}) {
  return new SseSubscription(url, rooms, options)
}

const PERMANENT_STATUSES = new Set([400, 403, 404, 405, 406])

export class SseSubscription extends RoomEvents {
  #url
  #rooms
  #options
  #tracker
  #backoff
  #status = 'connecting'
  #lastEventId
  #retryMs = null
  #source = null
  #abort = null
  #listening = new Set()
  #timer = null
  #closed = false

  constructor (url, rooms, options = {}) {
    super(options)
    const list = [...new Set(Array.isArray(rooms) ? rooms : [rooms])]
    if (list.length === 0) throw new TypeError('subscribe(url, rooms): at least one room')
    this.#url = toHttpUrl(url)
    this.#rooms = list
    this.#options = { transport: 'eventsource', reconnect: true, ...options }
    const transport = this.#options.transport
    if (transport !== 'eventsource' && transport !== 'fetch') throw new TypeError('transport must be "eventsource" or "fetch"')
    if (transport === 'eventsource' && typeof (options.EventSource ?? globalThis.EventSource) !== 'function') {
      throw new TypeError('no EventSource implementation: pass options.EventSource or use transport "fetch"')
    }
    this.#tracker = new ResumeTracker({ window: options.dedupeWindow })
    this.#backoff = new Backoff(options.backoff)
    this.#lastEventId = options.lastEventId ?? null
    this.#open()
  }

  get status () {
    return this.#status
  }

  get rooms () {
    return [...this.#rooms]
  }

  /** the id of the last event received: pass it as `lastEventId` to a later subscription to resume */
  get lastEventId () {
    return this.#lastEventId
  }

  on (event, handler, options) {
    if (event === '*' && this.#options.transport === 'eventsource') {
      throw new TypeError('EventSource dispatches named events only: on("*") needs subscribe(url, rooms, { transport: "fetch" })')
    }
    const off = super.on(event, handler, options)
    if (this.#source !== null) this.#listen(this.#source, event)
    return off
  }

  close () {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    this.#source?.close()
    this.#source = null
    this.#abort?.abort()
    this.#abort = null
    this.#setStatus('closed', {})
  }

  #streamUrl (token, withResumeQuery) {
    const params = this.#rooms.map((room) => ['room', room])
    if (token !== null) params.push(['token', token])
    if (withResumeQuery && this.#lastEventId !== null) params.push(['lastEventId', this.#lastEventId])
    return withParams(this.#url, params)
  }

  async #open () {
    this.#timer = null
    if (this.#closed) return
    let token
    try {
      token = await resolveToken(this.#options.token)
    } catch (err) {
      this._emit('error', new GatewayError('TOKEN', `the token function failed: ${err?.message ?? err}`))
      this.#retry()
      return
    }
    if (this.#closed) return
    if (this.#options.transport === 'fetch') await this.#readStream(token)
    else this.#openEventSource(token)
  }

  #openEventSource (token) {
    const EventSourceImpl = this.#options.EventSource ?? globalThis.EventSource
    const url = this.#streamUrl(token, true)
    const source = new EventSourceImpl(url, { withCredentials: this.#options.withCredentials === true })
    this.#source = source
    this.#listening = new Set()
    source.onopen = () => {
      if (source !== this.#source) return
      this.#backoff.reset()
      this.#setStatus('open', {})
    }
    source.onerror = () => {
      if (source !== this.#source) return
      if (source.readyState === 2) {
        // the browser gave up (an HTTP error or not an event stream): find out why, then maybe start over
        this.#source = null
        source.close()
        this.#diagnose(url)
      } else {
        this.#setStatus('reconnecting', {})
      }
    }
    source.addEventListener('gap', (e) => { this.#onGapEvent(e.data) })
    for (const name of this.eventNames) this.#listen(source, name)
  }

  #listen (source, name) {
    if (name === '*' || name === 'gap' || this.#listening.has(name)) return
    this.#listening.add(name)
    source.addEventListener(name, (e) => {
      if (source === this.#source) this.#onMessage(name, e.data, e.lastEventId)
    })
  }

  async #diagnose (url) {
    let err = null
    const controller = new AbortController()
    try {
      const response = await this.#fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
      if (response.ok) controller.abort()
      else err = await httpError(response)
    } catch (e) {
      err = new GatewayError('NETWORK', `the stream failed: ${e?.message ?? e}`)
    }
    this.#failed(err)
  }

  /** A stream could not start (`err` null: it did, then ended). Retries unless the refusal is permanent. */
  #failed (err) {
    if (this.#closed) return
    if (err !== null) this._emit('error', err)
    const status = err?.status
    // a refused token stays refused unless the token function can hand out a fresh one
    const permanent = PERMANENT_STATUSES.has(status) || (status === 401 && typeof this.#options.token !== 'function')
    if (!this.#options.reconnect || permanent) {
      this.#closed = true
      this.#setStatus('closed', { error: err })
      return
    }
    this.#retry()
  }

  #retry () {
    const attempt = this.#backoff.attempt + 1
    const delayMs = Math.max(this.#retryMs ?? 0, this.#backoff.next())
    this.#setStatus('reconnecting', { attempt, delayMs })
    this.#timer = setTimeout(() => { this.#open() }, delayMs)
  }

  #fetch (url, init) {
    const fetchImpl = this.#options.fetch ?? globalThis.fetch
    return fetchImpl(url, { ...init, credentials: this.#options.withCredentials === true ? 'include' : 'same-origin' })
  }

  async #readStream (token) {
    const headers = { accept: 'text/event-stream' }
    if (token !== null) headers.authorization = `Bearer ${token}`
    if (this.#lastEventId !== null) headers['last-event-id'] = this.#lastEventId
    const controller = new AbortController()
    this.#abort = controller
    let response
    try {
      response = await this.#fetch(this.#streamUrl(null, false), { headers, signal: controller.signal })
    } catch (e) {
      if (controller.signal.aborted) return
      this.#failed(new GatewayError('NETWORK', `the stream failed: ${e?.message ?? e}`))
      return
    }
    const type = response.headers.get('content-type') ?? ''
    if (!response.ok || !type.startsWith('text/event-stream')) {
      const err = response.ok
        ? new GatewayError('BAD_RESPONSE', `expected text/event-stream, got ${type || 'nothing'}`, { status: response.status })
        : await httpError(response)
      this.#failed(err)
      return
    }
    this.#backoff.reset()
    this.#setStatus('open', {})
    const parser = new SseParser()
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
          if (controller.signal.aborted) return
          if (event.event === 'gap') this.#onGapEvent(event.data)
          else this.#onMessage(event.event, event.data, event.id)
        }
        if (parser.retry !== undefined) this.#retryMs = parser.retry
      }
    } catch {
      if (controller.signal.aborted) return
    }
    if (controller.signal.aborted) return
    this.#abort = null
    this.#failed(null)
  }

  #onMessage (event, text, id) {
    let payload
    try {
      payload = JSON.parse(text)
    } catch {
      this._emit('error', new GatewayError('BAD_MESSAGE', `event ${event} carries data that is not JSON`))
      return
    }
    const room = payload?.room
    if (typeof id === 'string' && id !== '') this.#lastEventId = id
    if (!this.#tracker.accept(room, id)) return
    this._dispatch(event, payload?.data, { room, event, id })
  }

  #onGapEvent (text) {
    let room = null
    try {
      room = JSON.parse(text)?.room ?? null
    } catch {}
    this._emit('gap', { room, since: this.#lastEventId })
  }

  #setStatus (status, detail) {
    if (status === this.#status && status !== 'reconnecting') return
    this.#status = status
    this._emit('status', status, detail)
  }
}

// --------------------------------------------------------------------------------------------------------------------
// WebRTC signaling (/rtc)
// --------------------------------------------------------------------------------------------------------------------

/**
 * ICE servers from the rtc gateway (`GET /rtc/ice-servers`): a JSON list (or `{ iceServers: [...] }`); `[]` when
 * the route is missing or fails, which is enough on a LAN or loopback.
 */
export async function fetchIceServers (url, options = {}) {
  const fetchImpl = options.fetch ?? globalThis.fetch
  try {
    const headers = options.token ? { authorization: `Bearer ${options.token}` } : {}
    const response = await fetchImpl(toHttpUrl(url), { headers })
    if (!response.ok) return []
    const body = await response.json()
    const list = Array.isArray(body) ? body : Array.isArray(body?.iceServers) ? body.iceServers : []
    return list.filter((server) => server !== null && typeof server === 'object' &&
      (typeof server.urls === 'string' || Array.isArray(server.urls)))
  } catch {
    return []
  }
}

/** Joins rtc `room` over the signaling socket at `url`; see RtcSession. */
export function joinRtc (url, room, options = {}) {
  return new RtcSession(url, room, options)
}

/** One remote peer of an RtcSession. */
export class RtcPeer {
  constructor (id, pc, polite) {
    this.id = id
    this.pc = pc
    /** the default data channel (label `dataChannel` of the session) once it exists */
    this.channel = null
    this.channels = new Map()
    /** remote streams seen on this peer */
    this.streams = new Set()
    this.polite = polite
    this.makingOffer = false
    this.ignoreOffer = false
    this.tracksAdded = false
    this.candidates = []
    this.closed = false
  }

  /** Sends on the default data channel; false when it is not open. */
  send (data) {
    if (this.channel === null || this.channel.readyState !== 'open') return false
    this.channel.send(data)
    return true
  }

  close () {
    if (this.closed) return
    this.closed = true
    for (const channel of this.channels.values()) {
      try {
        channel.close()
      } catch {}
    }
    this.pc.close()
  }
}

/**
 * A member of an rtc room with a peer connection to every other member.
 *
 * - the newcomer makes the offers: on `joined` it creates a connection, its data channel and its tracks for each
 *   peer already there; the others answer (so the first negotiation never collides). Later negotiations (a stream
 *   added with `addStream`) use the "perfect negotiation" pattern, the newcomer being the impolite side.
 * - remote ICE candidates wait until the remote description is set.
 * - `peer-left` (or a failed connection) closes that peer's connection.
 *
 * Events (`on(name, fn)`): `joined({ peer, peers })`, `peer(peer)`, `peer-left(peer)`, `channel(channel, peer)` when
 * a data channel opens, `message(data, peer, channel)`, `track(track, streams, peer)`, `state(state, peer)`,
 * `event(data, { room, event, id })` for room events published to the rtc room, `error(err)`, `close({ code })`.
 */
export class RtcSession {
  #url
  #options
  #PeerConnection
  #WebSocket
  #socket = null
  #listeners = new Map()
  #streams = []
  #iceServers = []
  #chain = Promise.resolve()
  #joinRef = 'j1'
  #ready
  #closed = false

  constructor (url, room, options = {}) {
    this.room = room
    /** my peer id in the room, once joined */
    this.peerId = null
    /** the user id of the signaling connection (hello), null when anonymous */
    this.user = undefined
    /** remote peers by id */
    this.peers = new Map()
    this.#url = toSocketUrl(url)
    this.#options = { auth: 'frame', dataChannel: 'data', ...options }
    this.#PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket
    if (typeof this.#PeerConnection !== 'function') throw new TypeError('no RTCPeerConnection implementation')
    if (typeof this.#WebSocket !== 'function') throw new TypeError('no WebSocket implementation: pass options.WebSocket')
    if (options.stream) this.#streams.push(options.stream)
    /** resolves `{ peer, peers }` once joined; rejects with the server's error (ROOM_FULL, FORBIDDEN, ...) */
    this.ready = new Promise((resolve, reject) => { this.#ready = { resolve, reject } })
    this.ready.catch(() => {})
    this.#start()
  }

  /** `fn` for session events (see the class comment); returns a function that removes it */
  on (name, fn) {
    if (typeof fn !== 'function') throw new TypeError('on(name, fn): fn must be a function')
    let set = this.#listeners.get(name)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(name, set)
    }
    set.add(fn)
    return () => { set.delete(fn) }
  }

  /** Sends `data` on the default data channel of every peer whose channel is open; returns how many. */
  send (data) {
    let count = 0
    for (const peer of this.peers.values()) if (peer.send(data)) count++
    return count
  }

  /** Adds a local stream's tracks to every peer (now and later ones); renegotiates the existing connections. */
  addStream (stream) {
    if (this.#streams.includes(stream)) return
    this.#streams.push(stream)
    for (const peer of this.peers.values()) {
      if (!peer.tracksAdded) continue
      for (const track of stream.getTracks()) peer.pc.addTrack(track, stream)
    }
  }

  /** Stops sending a local stream's tracks to every peer. */
  removeStream (stream) {
    const index = this.#streams.indexOf(stream)
    if (index === -1) return
    this.#streams.splice(index, 1)
    const tracks = new Set(stream.getTracks())
    for (const peer of this.peers.values()) {
      for (const sender of peer.pc.getSenders()) if (tracks.has(sender.track)) peer.pc.removeTrack(sender)
    }
  }

  /** Leaves the room: closes every peer connection and the signaling socket. */
  close () {
    if (this.#closed) return
    this.#closed = true
    for (const peer of [...this.peers.values()]) this.#removePeer(peer, false)
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) {
      socket.send(JSON.stringify({ op: 'leave', room: this.room }))
      socket.close(1000, 'left')
    } else if (socket !== null) {
      try {
        socket.close()
      } catch {}
    }
    this.#ready.reject(new GatewayError('CLOSED', 'the rtc session was closed'))
  }

  leave () {
    this.close()
  }

  #emit (name, ...args) {
    const set = this.#listeners.get(name)
    if (set === undefined) return
    for (const fn of [...set]) {
      try {
        fn(...args)
      } catch (err) {
        report(err)
      }
    }
  }

  async #start () {
    let token
    try {
      token = await resolveToken(this.#options.token)
    } catch (err) {
      this.#fail(new GatewayError('TOKEN', `the token function failed: ${err?.message ?? err}`))
      return
    }
    const iceServers = this.#options.iceServers !== undefined
      ? Promise.resolve(this.#options.iceServers)
      : fetchIceServers(this.#options.iceServersUrl ?? `${toHttpUrl(this.#url).replace(/[?#].*$/, '').replace(/\/$/, '')}/ice-servers`,
        { token, fetch: this.#options.fetch })
    if (this.#closed) return
    const url = token !== null && this.#options.auth === 'query' ? withParams(this.#url, [['token', token]]) : this.#url
    const socket = new this.#WebSocket(url)
    this.#socket = socket
    socket.onopen = () => {
      if (token !== null && this.#options.auth === 'frame') socket.send(JSON.stringify({ op: 'auth', token, ref: 'auth' }))
      socket.send(JSON.stringify({ op: 'join', room: this.room, ref: this.#joinRef }))
    }
    socket.onmessage = (e) => {
      let frame
      try {
        frame = JSON.parse(typeof e.data === 'string' ? e.data : String(e.data))
      } catch {
        return
      }
      // one frame after the other: a signal never overtakes the description before it
      this.#chain = this.#chain.then(() => this.#handle(frame, iceServers)).catch((err) => {
        this.#emit('error', err instanceof GatewayError ? err : new GatewayError('RTC', err?.message ?? String(err)))
      })
    }
    socket.onclose = (e) => {
      this.#socket = null
      this.#ready.reject(new GatewayError('DISCONNECTED', `the signaling connection closed (${e.code})`))
      this.#emit('close', { code: e.code, reason: e.reason })
    }
    socket.onerror = () => {}
  }

  #fail (err) {
    this.#ready.reject(err)
    this.#emit('error', err)
  }

  async #handle (frame, iceServers) {
    if (this.#closed || frame === null || typeof frame !== 'object') return
    switch (frame.op) {
      case 'hello':
        this.user = frame.user ?? null
        return
      case 'joined': {
        if (frame.room !== this.room) return
        this.#iceServers = await iceServers
        this.peerId = frame.peer
        const peers = Array.isArray(frame.peers) ? frame.peers : []
        for (const id of peers) if (!this.peers.has(id)) this.#createPeer(id, true)
        this.#ready.resolve({ peer: frame.peer, peers })
        this.#emit('joined', { peer: frame.peer, peers })
        return
      }
      case 'signal': {
        if (frame.room !== this.room || typeof frame.from !== 'string' || this.peerId === null) return
        const data = frame.data ?? {}
        let peer = this.peers.get(frame.from)
        if (peer === undefined) {
          // a newcomer's first offer creates the answering side; a stray candidate of a gone peer does not
          if (data.description?.type !== 'offer') return
          peer = this.#createPeer(frame.from, false)
        }
        await this.#signal(peer, data)
        return
      }
      case 'peer-left': {
        const peer = this.peers.get(frame.peer)
        if (peer !== undefined) this.#removePeer(peer, true)
        return
      }
      case 'event':
        this.#emit('event', frame.data, { room: frame.room, event: frame.event, id: frame.id })
        return
      case 'error': {
        const err = new GatewayError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error'), { ref: frame.ref })
        if (frame.ref === this.#joinRef) {
          this.#fail(err)
          this.close()
        } else {
          this.#emit('error', err)
        }
      }
    }
  }

  #createPeer (id, initiator) {
    const pc = new this.#PeerConnection({ iceServers: this.#iceServers })
    // the newcomer (initiator) is impolite: its offers win a collision
    const peer = new RtcPeer(id, pc, !initiator)
    this.peers.set(id, peer)
    pc.onicecandidate = (e) => {
      if (e.candidate) this.#sendSignal(id, { candidate: typeof e.candidate.toJSON === 'function' ? e.candidate.toJSON() : e.candidate })
    }
    pc.onnegotiationneeded = () => { this.#negotiate(peer) }
    pc.ontrack = (e) => {
      for (const stream of e.streams ?? []) peer.streams.add(stream)
      this.#emit('track', e.track, e.streams ?? [], peer)
    }
    pc.ondatachannel = (e) => { this.#setupChannel(peer, e.channel) }
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState
      this.#emit('state', state, peer)
      if (state === 'failed' && this.peers.get(id) === peer) this.#removePeer(peer, true)
    }
    this.#emit('peer', peer)
    if (initiator) {
      const label = this.#options.dataChannel
      if (typeof label === 'string' && label !== '') this.#setupChannel(peer, pc.createDataChannel(label, this.#options.channelOptions))
      this.#addTracks(peer)
    }
    return peer
  }

  #addTracks (peer) {
    peer.tracksAdded = true
    for (const stream of this.#streams) for (const track of stream.getTracks()) peer.pc.addTrack(track, stream)
  }

  #setupChannel (peer, channel) {
    peer.channels.set(channel.label, channel)
    if (channel.label === this.#options.dataChannel) peer.channel = channel
    channel.onopen = () => { this.#emit('channel', channel, peer) }
    channel.onmessage = (e) => { this.#emit('message', e.data, peer, channel) }
    channel.onclose = () => {
      if (peer.channels.get(channel.label) === channel) peer.channels.delete(channel.label)
      if (peer.channel === channel) peer.channel = null
    }
  }

  async #negotiate (peer) {
    const pc = peer.pc
    try {
      peer.makingOffer = true
      await pc.setLocalDescription()
      this.#sendDescription(peer, pc.localDescription)
    } catch (err) {
      if (!peer.closed) this.#emit('error', new GatewayError('RTC', `negotiation with ${peer.id} failed: ${err?.message ?? err}`))
    } finally {
      peer.makingOffer = false
    }
  }

  async #signal (peer, data) {
    const pc = peer.pc
    if (data.description) {
      const description = data.description
      const collision = description.type === 'offer' && (peer.makingOffer || pc.signalingState !== 'stable')
      peer.ignoreOffer = !peer.polite && collision
      if (peer.ignoreOffer) return
      await pc.setRemoteDescription(description)
      for (const candidate of peer.candidates.splice(0)) await this.#addCandidate(peer, candidate)
      if (description.type === 'offer') {
        // the answerer's tracks ride on the transceivers of the offer where the kinds match
        if (!peer.tracksAdded) this.#addTracks(peer)
        await pc.setLocalDescription()
        this.#sendDescription(peer, pc.localDescription)
      }
    } else if (data.candidate) {
      if (pc.remoteDescription === null || pc.remoteDescription === undefined) peer.candidates.push(data.candidate)
      else await this.#addCandidate(peer, data.candidate)
    }
  }

  async #addCandidate (peer, candidate) {
    try {
      await peer.pc.addIceCandidate(candidate)
    } catch (err) {
      if (!peer.ignoreOffer) throw err
    }
  }

  #sendDescription (peer, description) {
    if (description === null || peer.closed) return
    this.#sendSignal(peer.id, { description: { type: description.type, sdp: description.sdp } })
  }

  #sendSignal (to, data) {
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) socket.send(JSON.stringify({ op: 'signal', room: this.room, to, data }))
  }

  #removePeer (peer, announce) {
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id)
    peer.close()
    if (announce) this.#emit('peer-left', peer)
  }
}
