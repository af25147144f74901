import type { BackoffOptions } from './backoff.js'
import type { GatewayError } from './errors.js'
import type { TokenOption } from './urls.js'

/** A listener threw: surface it like an uncaught error without breaking the client's own state. */
export function report (err: unknown): void {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err)
  else queueMicrotask(() => { throw err })
}

/** any listener signature (every function type is assignable to it) */
type Listener = (...args: never) => void

/**
 * Named listener sets, each call isolated: a listener that throws is reported (`reportError`) and the others still
 * run. `on()` returns the function that removes the listener.
 */
export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  readonly #sets = new Map<keyof Events, Set<Events[keyof Events]>>()

  on<K extends keyof Events> (name: K, fn: Events[K]): () => void {
    if (typeof fn !== 'function') throw new TypeError(`${String(name)} listener must be a function`)
    let set = this.#sets.get(name)
    if (set === undefined) {
      set = new Set()
      this.#sets.set(name, set)
    }
    const listeners = set
    listeners.add(fn)
    return () => { listeners.delete(fn) }
  }

  emit<K extends keyof Events> (name: K, ...args: Parameters<Events[K]>): void {
    const set = this.#sets.get(name)
    if (set === undefined) return
    for (const fn of [...set]) {
      try {
        (fn as unknown as (...a: Parameters<Events[K]>) => void)(...args)
      } catch (err) {
        report(err)
      }
    }
  }
}

/** What a room event comes with. */
export interface EventMeta {
  room: string
  event: string
  id: string
}

export type EventHandler<T = unknown> = (data: T, meta: EventMeta) => void

export interface GapInfo {
  room: string | null
  /** the resume point that could not be served */
  since: string | null
}

export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StatusDetail {
  /** reconnecting: the attempt number and the wait before it */
  attempt?: number
  delayMs?: number
  /** close code and reason of the connection that ended */
  code?: number
  reason?: string
  /** open (ws): the connection id and user of `hello` */
  conn?: string | null
  user?: string | null
  /** closed (sse): why the stream stopped for good */
  error?: GatewayError | null
}

/** The options every room client (ws and sse) takes for its callbacks. */
export interface RoomEventsOptions {
  onGap?: (gap: GapInfo) => void
  onStatus?: (status: ClientStatus, detail: StatusDetail) => void
  onError?: (error: GatewayError) => void
}

interface Hooks {
  gap: (gap: GapInfo) => void
  status: (status: ClientStatus, detail: StatusDetail) => void
  error: (error: GatewayError) => void
}

interface Registration {
  handler: EventHandler<never>
  room: string | null
}

/** Event registration shared by the ws and sse clients. */
export class RoomEvents {
  readonly #handlers = new Map<string, Set<Registration>>()
  readonly #hooks = new Emitter<Hooks>()

  constructor (options: RoomEventsOptions) {
    if (typeof options.onGap === 'function') this.onGap(options.onGap)
    if (typeof options.onStatus === 'function') this.onStatus(options.onStatus)
    if (typeof options.onError === 'function') this.onError(options.onError)
  }

  /**
   * Calls `handler(data, { room, event, id })` for each room event named `event` (`'*'`: every event), only those
   * of `options.room` when given. Returns a function that removes the handler.
   */
  on<T = unknown> (event: string, handler: EventHandler<T>, options: { room?: string } = {}): () => void {
    if (typeof event !== 'string' || event === '') throw new TypeError('on(event, handler): event must be a non-empty string')
    if (typeof handler !== 'function') throw new TypeError('on(event, handler): handler must be a function')
    let set = this.#handlers.get(event)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(event, set)
    }
    const registrations = set
    const entry: Registration = { handler: handler as EventHandler<never>, room: options.room ?? null }
    registrations.add(entry)
    return () => { registrations.delete(entry) }
  }

  /** Removes `handler` from `event` (every registration of it). */
  off<T = unknown> (event: string, handler: EventHandler<T>): void {
    const set = this.#handlers.get(event)
    if (set === undefined) return
    for (const entry of set) if (entry.handler === handler) set.delete(entry)
  }

  /** `fn({ room, since })` when a room's missed events could not all be recovered. */
  onGap (fn: (gap: GapInfo) => void): () => void {
    return this.#hooks.on('gap', fn)
  }

  /** `fn(status, detail)` on every status change. */
  onStatus (fn: (status: ClientStatus, detail: StatusDetail) => void): () => void {
    return this.#hooks.on('status', fn)
  }

  /** `fn(error)` for errors of the connection: a refused auth, a refused join or rejoin, errors without ref, a failed stream. */
  onError (fn: (error: GatewayError) => void): () => void {
    return this.#hooks.on('error', fn)
  }

  /** the event names with handlers */
  get eventNames (): string[] {
    return [...this.#handlers.keys()]
  }

  protected emitGap (gap: GapInfo): void {
    this.#hooks.emit('gap', gap)
  }

  protected emitStatus (status: ClientStatus, detail: StatusDetail): void {
    this.#hooks.emit('status', status, detail)
  }

  protected emitError (error: GatewayError): void {
    this.#hooks.emit('error', error)
  }

  /** Hands a room event to the handlers of its name and to the catch-all ones. */
  protected dispatch (event: string, data: unknown, meta: EventMeta): void {
    for (const name of [event, '*']) {
      const set = this.#handlers.get(name)
      if (set === undefined) continue
      for (const entry of [...set]) {
        if (entry.room !== null && entry.room !== meta.room) continue
        try {
          (entry.handler as EventHandler)(data, meta)
        } catch (err) {
          report(err)
        }
      }
    }
  }
}

/** Options shared by the ws and sse clients. */
export interface CommonOptions extends RoomEventsOptions {
  /** a token, or a function returning a fresh one, called before every connection attempt */
  token?: TokenOption
  backoff?: BackoffOptions
  /** how many recent ids per room are remembered to drop duplicates; default 1024 */
  dedupeWindow?: number
}
