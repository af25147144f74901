import { Backoff } from './core/backoff.js'
import { type CommonOptions, RoomEvents, type ClientStatus, type EventHandler, type StatusDetail } from './core/emitter.js'
import { GatewayError, httpError, isRecord, messageOf } from './core/errors.js'
import { ResumeTracker } from './core/resume.js'
import { SseParser } from './core/sse-parser.js'
import { resolveToken, toHttpUrl, withParams } from './core/urls.js'

export interface SubscribeOptions extends CommonOptions {
  /**
   * 'eventsource' (default): the browser's EventSource, which resumes by itself with Last-Event-ID; named events
   * only (no `on('*')`), the token goes in `?token=`. 'fetch': a fetch stream reader; `on('*')` works and the token
   * goes in an Authorization header.
   */
  transport?: 'eventsource' | 'fetch'
  /** resume from this id (e.g. `lastEventId` of an earlier subscription of the same rooms) */
  lastEventId?: string
  /** send cookies cross-origin */
  withCredentials?: boolean
  /** start over after the stream was refused or ended; default true */
  reconnect?: boolean
  /** an EventSource class; default globalThis.EventSource */
  EventSource?: unknown
  fetch?: typeof fetch
}

/** What the subscription uses of an EventSource. */
interface SourceLike {
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onerror: ((event: unknown) => void) | null
  addEventListener (type: string, listener: (event: { data?: unknown, lastEventId?: unknown }) => void): void
  close (): void
}

type SourceConstructor = new (url: string, init: { withCredentials: boolean }) => SourceLike

/** EventSource readyState once the browser gave up on the stream */
const SOURCE_CLOSED = 2

/** HTTP answers that a retry will not change (a 401 may, when the token function hands out a fresh token). */
const PERMANENT_STATUSES = new Set([400, 403, 404, 405, 406])

/** Subscribes to `rooms` over `/sse`; see SseSubscription. */
export function subscribe (url: string | URL, rooms: string | string[], options: SubscribeOptions = {}): SseSubscription {
  return new SseSubscription(url, rooms, options)
}

/**
 * A `/sse` stream of one or more rooms (docs/protocol.md) with the same `on()`/`onGap()` API as the ws client.
 * Event ids are opaque: the id of the last event received resumes the whole stream (`Last-Event-ID`, sent back
 * verbatim), and events are deduplicated by id per room.
 */
export class SseSubscription extends RoomEvents {
  readonly #url: string
  readonly #rooms: string[]
  readonly #options: SubscribeOptions
  readonly #transport: 'eventsource' | 'fetch'
  readonly #tracker: ResumeTracker
  readonly #backoff: Backoff
  #status: ClientStatus = 'connecting'
  #lastEventId: string | null
  #retryMs: number | null = null
  #source: SourceLike | null = null
  #abort: AbortController | null = null
  #listening = new Set<string>()
  #timer: ReturnType<typeof setTimeout> | undefined = undefined
  #closed = false

  constructor (url: string | URL, rooms: string | string[], options: SubscribeOptions = {}) {
    super(options)
    const list = [...new Set(Array.isArray(rooms) ? rooms : [rooms])]
    if (list.length === 0) throw new TypeError('subscribe(url, rooms): at least one room')
    this.#url = toHttpUrl(url)
    this.#rooms = list
    this.#options = options
    const transport = options.transport ?? 'eventsource'
    if (transport !== 'eventsource' && transport !== 'fetch') throw new TypeError('transport must be "eventsource" or "fetch"')
    this.#transport = transport
    if (transport === 'eventsource' && typeof (options.EventSource ?? globalThis.EventSource) !== 'function') {
      throw new TypeError('no EventSource implementation: pass options.EventSource or use transport "fetch"')
    }
    this.#tracker = new ResumeTracker(options.dedupeWindow === undefined ? {} : { window: options.dedupeWindow })
    this.#backoff = new Backoff(options.backoff)
    this.#lastEventId = options.lastEventId ?? null
    void this.#open()
  }

  get status (): ClientStatus {
    return this.#status
  }

  get rooms (): string[] {
    return [...this.#rooms]
  }

  /** the id of the last event received: pass it as `lastEventId` to a later subscription of the same rooms to resume */
  get lastEventId (): string | null {
    return this.#lastEventId
  }

  override on<T = unknown> (event: string, handler: EventHandler<T>, options?: { room?: string }): () => void {
    if (event === '*' && this.#transport === 'eventsource') {
      throw new TypeError('EventSource dispatches named events only: on("*") needs subscribe(url, rooms, { transport: "fetch" })')
    }
    const off = super.on(event, handler, options)
    if (this.#source !== null) this.#listen(this.#source, event)
    return off
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    this.#source?.close()
    this.#source = null
    this.#abort?.abort()
    this.#abort = null
    this.#setStatus('closed', {})
  }

  #streamUrl (token: string | null, withResumeQuery: boolean): string {
    const params: Array<[string, string]> = this.#rooms.map((room) => ['room', room])
    if (token !== null) params.push(['token', token])
    if (withResumeQuery && this.#lastEventId !== null) params.push(['lastEventId', this.#lastEventId])
    return withParams(this.#url, params)
  }

  async #open (): Promise<void> {
    this.#timer = undefined
    if (this.#closed) return
    let token: string | null
    try {
      token = await resolveToken(this.#options.token)
    } catch (err) {
      this.emitError(new GatewayError('TOKEN', `the token function failed: ${messageOf(err)}`))
      this.#retry()
      return
    }
    if (this.#closed) return
    if (this.#transport === 'fetch') await this.#readStream(token)
    else this.#openEventSource(token)
  }

  #openEventSource (token: string | null): void {
    const EventSourceImpl = (this.#options.EventSource ?? globalThis.EventSource) as SourceConstructor
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
      if (source.readyState === SOURCE_CLOSED) {
        // the browser gave up (an HTTP error or not an event stream): find out why, then maybe start over
        this.#source = null
        source.close()
        void this.#diagnose(url)
      } else {
        this.#setStatus('reconnecting', {})
      }
    }
    source.addEventListener('gap', (e) => {
      if (source === this.#source) this.#onGapEvent(textOf(e.data), textOf(e.lastEventId))
    })
    source.addEventListener('expired', (e) => {
      if (source !== this.#source) return
      // the browser would reconnect with the same (expired) token in the URL: start over with a fresh one instead
      this.#source = null
      source.close()
      this.#onExpired(textOf(e.data))
      this.#failed(null)
    })
    for (const name of this.eventNames) this.#listen(source, name)
  }

  #listen (source: SourceLike, name: string): void {
    if (name === '*' || name === 'gap' || name === 'expired' || this.#listening.has(name)) return
    this.#listening.add(name)
    source.addEventListener(name, (e) => {
      if (source === this.#source) this.#onMessage(name, textOf(e.data), textOf(e.lastEventId))
    })
  }

  async #diagnose (url: string): Promise<void> {
    let err: GatewayError | null = null
    const controller = new AbortController()
    try {
      const response = await this.#fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
      if (response.ok) controller.abort()
      else err = await httpError(response)
    } catch (e) {
      err = new GatewayError('NETWORK', `the stream failed: ${messageOf(e)}`)
    }
    this.#failed(err)
  }

  /** A stream could not start (`err` null: it did, then ended). Retries unless the refusal is permanent. */
  #failed (err: GatewayError | null): void {
    if (this.#closed) return
    if (err !== null) this.emitError(err)
    const status = err?.status
    // a refused token stays refused unless the token function can hand out a fresh one
    const permanent = (status !== undefined && PERMANENT_STATUSES.has(status)) || (status === 401 && typeof this.#options.token !== 'function')
    if (this.#options.reconnect === false || permanent) {
      this.#closed = true
      this.#setStatus('closed', { error: err })
      return
    }
    this.#retry()
  }

  #retry (): void {
    const attempt = this.#backoff.attempt + 1
    const delayMs = Math.max(this.#retryMs ?? 0, this.#backoff.next())
    this.#setStatus('reconnecting', { attempt, delayMs })
    this.#timer = setTimeout(() => { void this.#open() }, delayMs)
  }

  #fetch (url: string, init: RequestInit): Promise<Response> {
    const fetchImpl = this.#options.fetch ?? globalThis.fetch
    return fetchImpl(url, { ...init, credentials: this.#options.withCredentials === true ? 'include' : 'same-origin' })
  }

  async #readStream (token: string | null): Promise<void> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (token !== null) headers.authorization = `Bearer ${token}`
    // the id is opaque (it may encode a position per room of the stream): sent back exactly as received
    if (this.#lastEventId !== null) headers['last-event-id'] = this.#lastEventId
    const controller = new AbortController()
    this.#abort = controller
    let response: Response
    try {
      response = await this.#fetch(this.#streamUrl(null, false), { headers, signal: controller.signal })
    } catch (e) {
      if (controller.signal.aborted) return
      this.#failed(new GatewayError('NETWORK', `the stream failed: ${messageOf(e)}`))
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
    const decoder = new TextDecoder()
    try {
      const reader = response.body?.getReader()
      for (;;) {
        if (reader === undefined) break
        const { done, value } = await reader.read()
        if (done) break
        for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
          if (controller.signal.aborted) return
          if (event.event === 'gap') this.#onGapEvent(event.data, event.id)
          else if (event.event === 'expired') this.#onExpired(event.data)
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

  #onMessage (event: string, text: string, id: string): void {
    // the last id received, verbatim, as a browser's EventSource keeps it
    if (id !== '') this.#lastEventId = id
    let payload: unknown
    try {
      payload = JSON.parse(text)
    } catch {
      this.emitError(new GatewayError('BAD_MESSAGE', `event ${event} carries data that is not JSON`))
      return
    }
    const room = isRecord(payload) && typeof payload.room === 'string' ? payload.room : ''
    if (!this.#tracker.accept(room, id)) return
    this.dispatch(event, isRecord(payload) ? payload.data : undefined, { room, event, id })
  }

  #onGapEvent (text: string, id: string): void {
    let room: string | null = null
    try {
      const payload: unknown = JSON.parse(text)
      if (isRecord(payload) && typeof payload.room === 'string') room = payload.room
    } catch {}
    this.emitGap({ room, since: this.#lastEventId })
    if (id !== '') this.#lastEventId = id
  }

  /**
   * `event: expired`: the stream's token expired and the server ends the stream (docs/protocol.md). Reported as
   * `UNAUTHENTICATED`; the stream starts over, with a fresh token when `token` is a function (a fixed token is then
   * refused with 401, which stops the subscription).
   */
  #onExpired (text: string): void {
    let message = 'token expired'
    try {
      const payload: unknown = JSON.parse(text)
      if (isRecord(payload) && typeof payload.message === 'string') message = payload.message
    } catch {}
    this.emitError(new GatewayError('UNAUTHENTICATED', message))
  }

  #setStatus (status: ClientStatus, detail: StatusDetail): void {
    if (status === this.#status && status !== 'reconnecting') return
    this.#status = status
    this.emitStatus(status, detail)
  }
}

function textOf (value: unknown): string {
  if (typeof value === 'string') return value
  return value === undefined || value === null ? '' : String(value)
}
