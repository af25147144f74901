import { compileRoomTemplate, type RoomTemplate } from './template.js'
import type { CompiledPattern, PatternSyntax } from './patterns.js'
import { errorText, sleep } from './async.js'

/** The part of a zod schema the processor uses (any zod 4 schema fits). */
export interface MessageSchema<T = unknown> {
  safeParse (value: unknown): { success: true, data: T } | { success: false, error: { issues: ReadonlyArray<{ path: PropertyKey[], message: string }> } }
}

/** Why a message was dead-lettered. `deliveries`: the broker delivered it more often than the retries allow (a handler that crashed the process or outlived its lease). */
export type FailureType = 'not-json' | 'schema' | 'template' | 'handler' | 'bridge' | 'deliveries'

export interface Failure {
  type: FailureType
  /** the first failure's text, with "(and N more failures)" when several routes failed; at most 1000 characters */
  error: string
  /** tries of the failing route (0: it could not be tried at all) */
  attempts: number
}

/**
 * handled (or dead-lettered): acknowledge it; ignored: nothing here consumes it, acknowledge it; retry: the broker
 * should deliver it again after `retryDelay(attempt)` (redelivery mode only); abandoned: closing, do not acknowledge.
 */
export type Outcome = 'handled' | 'dead-lettered' | 'ignored' | 'abandoned' | 'retry'

/** The outcomes the metrics count (`gateways_stream_messages_total{outcome}`). */
export type CountedOutcome = 'handled' | 'retried' | 'dead_lettered'

export interface ProcessorLog {
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

/** What a broker's lifecycle logs through (a pino logger fits). */
export interface StreamLog extends ProcessorLog {
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
}

/** One consumed message, as a gateway hands it to the processor. */
export interface Delivery<F extends object, R = unknown> {
  /** the message's actual topic, subject or stream key (the event name of a bridged message) */
  source: string
  /** the original bytes; null when the message has none (a Kafka tombstone, an empty MQTT or NATS payload) */
  payload: Buffer | null
  /** what handlers get besides `value`, `attempt` and `signal` (key, headers, position...) */
  fields: F
  /** where it came from, for logs (`{ topic, partition, offset }`) */
  where: Record<string, unknown>
  /** the broker's delivery count, 1 for the first delivery (redelivery mode) */
  attempt?: number
  /** an identity of this message across its deliveries (redelivery mode: routes that succeeded are not run again) */
  id?: string
  /**
   * The patterns (sources) of the subscriptions it came through, when the broker says so (MQTT subscription
   * identifiers): only their routes run, so overlapping subscriptions, each delivering its own copy, run each
   * route once. RegExp routes belong to the syntax's `catchAll`.
   */
  via?: ReadonlySet<string>
  /** the broker's own message, for the dead letter */
  raw: R
}

/** What a handler receives: the broker's fields plus these. */
export type StreamMessage<T, F extends object> = F & {
  /** the JSON payload, parsed (and transformed) by the handler's schema when it has one */
  value: T
  /** 1 on the first try, 2 on the first retry, ... */
  attempt: number
  /** aborted when the app closes: a long handler may stop early (the message is then delivered again later) */
  signal: AbortSignal
}

export type StreamHandler<T, F extends object> = (message: StreamMessage<T, F>) => unknown

export interface ProcessorOptions<F extends object, R> {
  /** the broker's name in logs: 'kafka', 'mqtt', 'nats', 'redis-streams' */
  broker: string
  syntax: PatternSyntax
  /**
   * inline: a failing route is retried here, after a backoff, until it succeeds or its retries are used up (Kafka,
   * MQTT: the broker cannot redeliver one message). redeliver: each delivery runs every route once and a failure
   * asks the broker for a later delivery (`retry`); the broker's delivery count is the attempt (NATS, Redis Streams).
   */
  mode: 'inline' | 'redeliver'
  /** retries after a failed handler (or room publish) before the message is dead-lettered */
  retries: number
  /** wait before the first retry; doubles each retry, at most `retryBackoffMaxMs` (default: 30 s or `retryBackoffMs`) */
  retryBackoffMs: number
  retryBackoffMaxMs?: number
  /** bridge delivery: publish `data` as event `event` to `room` */
  publish: (room: string, event: string, data: unknown) => unknown
  /** writes a dead letter to `destination`; a rejection leaves the message unhandled (not acknowledged: it comes again) */
  deadLetter: (delivery: Delivery<F, R>, failure: Failure, destination: string) => Promise<unknown>
  log: ProcessorLog
  /** counts outcomes for metrics */
  count?: (outcome: CountedOutcome) => void
}

interface HandlerRoute {
  readonly match: CompiledPattern | RegExp
  /** called with the message's value (after its schema) as `value` */
  readonly handler: (message: never) => unknown
  readonly schema: MessageSchema | undefined
}

interface BridgeRoute {
  readonly match: CompiledPattern
  readonly template: RoomTemplate
}

type Attempt = true | 'abandoned' | { error: string, attempts: number }

const MAX_ERROR = 1000
/** redelivery mode remembers which routes of a retried message succeeded, for this many messages at most */
const MAX_PROGRESS = 10_000

/**
 * Turns consumed messages into handler calls and room publishes, the same for every broker: JSON decoding, schema
 * checks, bounded retries with exponential backoff, and dead letters. Every handler and bridge rule matching a
 * message runs (in registration order, bridges last); each retries on its own, so one that already succeeded is not
 * repeated. A message that cannot succeed (not JSON, schema or template failure) is not retried. If anything failed,
 * ONE dead letter carries the original bytes and the first error.
 */
export class StreamProcessor<F extends object, R = unknown> {
  private readonly handlers: HandlerRoute[] = []
  private readonly bridges: BridgeRoute[] = []
  private readonly options: Required<ProcessorOptions<F, R>>
  /** redelivery mode: message id → indexes of the routes that already succeeded */
  private readonly progress = new Map<string, Set<number>>()

  constructor (options: ProcessorOptions<F, R>) {
    this.options = {
      retryBackoffMaxMs: Math.max(30_000, options.retryBackoffMs),
      count: () => {},
      ...options
    }
  }

  get syntax (): PatternSyntax {
    return this.options.syntax
  }

  /** Adds a handler; throws a TypeError when `pattern` is not valid for this broker. */
  on (pattern: string | RegExp, handler: StreamHandler<never, F>, schema?: MessageSchema): void {
    // a global or sticky RegExp keeps state between test() calls: match with a plain copy
    const match = pattern instanceof RegExp ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')) : this.compile(pattern)
    this.handlers.push({ match, handler, schema })
  }

  /** Adds a bridge rule; throws a TypeError naming the problem with the pattern or the template. */
  bridge (pattern: string, template: string): void {
    const match = this.compile(pattern)
    this.bridges.push({ match, template: compileRoomTemplate(template, { wildcards: this.options.syntax.wildcards === undefined ? undefined : match.wildcards }) })
  }

  private compile (pattern: string): CompiledPattern {
    const { syntax } = this.options
    const problem = syntax.problem(pattern)
    if (problem !== null) throw new TypeError(`${syntax.noun} ${JSON.stringify(pattern)} ${problem}`)
    return syntax.compile(pattern)
  }

  /** What the consumer subscribes to: the patterns (once each, handlers' then bridges') and the RegExps. */
  subscriptions (): Array<string | RegExp> {
    const patterns = new Set<string>()
    const regexps = new Map<string, RegExp>()
    for (const { match } of this.handlers) {
      if (match instanceof RegExp) regexps.set(String(match), match)
      else patterns.add(match.source)
    }
    for (const { match } of this.bridges) patterns.add(match.source)
    return [...patterns, ...regexps.values()]
  }

  /** Whether anything consumes messages of `source` (a RegExp never matches a dead-letter destination). */
  wants (source: string): boolean {
    const isDlq = this.options.syntax.isDeadLetter(source)
    return this.handlers.some((route) => this.matches(route.match, source, isDlq) !== null) ||
      this.bridges.some((route) => this.matches(route.match, source, isDlq) !== null)
  }

  /** The wait before delivery `attempt + 1` of a message whose delivery `attempt` failed. */
  retryDelay (attempt: number): number {
    const { retryBackoffMs, retryBackoffMaxMs } = this.options
    return Math.min(retryBackoffMaxMs, retryBackoffMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  }

  /** The most deliveries a message gets before it is dead-lettered (redelivery mode). */
  get maxDeliveries (): number {
    return this.options.retries + 1
  }

  private matches (match: CompiledPattern | RegExp, source: string, isDlq: boolean, via?: ReadonlySet<string>): string[] | null {
    if (via !== undefined && !via.has(match instanceof RegExp ? this.options.syntax.catchAll ?? '' : match.source)) return null
    if (match instanceof RegExp) return !isDlq && match.test(source) ? [] : null
    // a wildcard reaches a dead-letter destination only when the pattern itself names dead letters
    if (isDlq && !this.options.syntax.isDeadLetter(match.source)) return null
    return match.match(source)
  }

  /**
   * Handles one message. Resolves with what to do about it; rejects only when a dead letter could not be written
   * (the message must then NOT be acknowledged: a redelivery beats a loss).
   */
  async process (delivery: Delivery<F, R>, signal: AbortSignal): Promise<Outcome> {
    const { source } = delivery
    const { syntax, mode } = this.options
    const isDlq = syntax.isDeadLetter(source)
    const handlers: Array<{ index: number, route: HandlerRoute, wildcards: string[] }> = []
    const bridges: Array<{ index: number, route: BridgeRoute, wildcards: string[] }> = []
    this.handlers.forEach((route, index) => {
      const wildcards = this.matches(route.match, source, isDlq, delivery.via)
      if (wildcards !== null) handlers.push({ index, route, wildcards })
    })
    this.bridges.forEach((route, index) => {
      const wildcards = this.matches(route.match, source, isDlq, delivery.via)
      if (wildcards !== null) bridges.push({ index: this.handlers.length + index, route, wildcards })
    })
    if (handlers.length === 0 && bridges.length === 0) return 'ignored'

    const redeliver = mode === 'redeliver'
    const deliveryAttempt = delivery.attempt ?? 1
    if (redeliver && deliveryAttempt > this.maxDeliveries) {
      return await this.deadLetter(delivery, {
        type: 'deliveries',
        error: `delivered ${deliveryAttempt} times without being acknowledged (a handler crashed the process or outlived its lease)`,
        attempts: deliveryAttempt - 1
      })
    }

    let value: unknown
    try {
      value = delivery.payload === null ? null : JSON.parse(delivery.payload.toString('utf8'))
    } catch (err) {
      return await this.deadLetter(delivery, { type: 'not-json', error: `the value is not JSON: ${errorText(err)}`, attempts: 0 })
    }

    const done = redeliver && delivery.id !== undefined ? this.progress.get(delivery.id) : undefined
    const succeeded = new Set(done)
    const failures: Failure[] = []
    let retryable = false
    const tryRoute = async (index: number, fn: (attempt: number) => unknown): Promise<Attempt> => {
      if (succeeded.has(index)) return true
      const result = redeliver ? await this.once(delivery, deliveryAttempt, fn) : await this.attempt(delivery, fn, signal)
      if (result === true) succeeded.add(index)
      else if (result !== 'abandoned') retryable = true
      return result
    }
    const shared = { ...delivery.fields, signal }
    for (const { index, route, wildcards } of handlers) {
      let input = value
      if (route.schema !== undefined) {
        const parsed = route.schema.safeParse(value)
        if (!parsed.success) {
          failures.push({ type: 'schema', error: `the value does not match the schema: ${issuesText(parsed.error.issues)}`, attempts: 0 })
          continue
        }
        input = parsed.data
      }
      const message = syntax.wildcards === undefined ? shared : { ...shared, wildcards }
      const result = await tryRoute(index, (attempt) => route.handler({ ...message, value: input, attempt } as never))
      if (result === 'abandoned') return 'abandoned'
      if (result !== true) failures.push({ type: 'handler', ...result })
    }
    for (const { index, route, wildcards } of bridges) {
      let room: string
      try {
        room = route.template.fill(value, wildcards)
      } catch (err) {
        failures.push({ type: 'template', error: errorText(err), attempts: 0 })
        continue
      }
      const result = await tryRoute(index, () => this.options.publish(room, source, value))
      if (result === 'abandoned') return 'abandoned'
      if (result !== true) failures.push({ type: 'bridge', ...result })
    }
    if (failures.length === 0) {
      this.forget(delivery)
      this.options.count('handled')
      return 'handled'
    }
    if (redeliver && retryable && deliveryAttempt < this.maxDeliveries) {
      if (delivery.id !== undefined) this.remember(delivery.id, succeeded)
      this.options.count('retried')
      return 'retry'
    }
    const first = failures[0]
    const error = failures.length > 1 ? `${first.error} (and ${failures.length - 1} more failure${failures.length > 2 ? 's' : ''})` : first.error
    return await this.deadLetter(delivery, { ...first, error })
  }

  /** Runs `fn` until it succeeds or the retries are used up; 'abandoned' when closing cut a backoff short. */
  private async attempt (delivery: Delivery<F, R>, fn: (attempt: number) => unknown, signal: AbortSignal): Promise<Attempt> {
    const { retries, log, broker } = this.options
    for (let attempt = 1; ; attempt++) {
      try {
        await fn(attempt)
        return true
      } catch (err) {
        const where = { ...delivery.where, attempt }
        if (attempt > retries) {
          log.warn({ err, ...where }, `${broker} message failed after its last retry`)
          return { error: errorText(err), attempts: attempt }
        }
        log.warn({ err, ...where }, `${broker} message failed; retrying`)
      }
      this.options.count('retried')
      if (!(await sleep(this.retryDelay(attempt), signal))) return 'abandoned'
    }
  }

  /** One try of `fn` in redelivery mode; the broker's delivery count is the attempt. */
  private async once (delivery: Delivery<F, R>, attempt: number, fn: (attempt: number) => unknown): Promise<Attempt> {
    const { log, broker } = this.options
    try {
      await fn(attempt)
      return true
    } catch (err) {
      const last = attempt >= this.maxDeliveries
      log.warn({ err, ...delivery.where, attempt }, last ? `${broker} message failed after its last retry` : `${broker} message failed; retrying`)
      return { error: errorText(err), attempts: attempt }
    }
  }

  private remember (id: string, succeeded: Set<number>): void {
    this.progress.delete(id)
    this.progress.set(id, succeeded)
    if (this.progress.size > MAX_PROGRESS) this.progress.delete(this.progress.keys().next().value as string)
  }

  private forget (delivery: Delivery<F, R>): void {
    if (delivery.id !== undefined && this.progress.size > 0) this.progress.delete(delivery.id)
  }

  private async deadLetter (delivery: Delivery<F, R>, failure: Failure): Promise<Outcome> {
    const error = failure.error.length > MAX_ERROR ? `${failure.error.slice(0, MAX_ERROR - 1)}…` : failure.error
    const destination = this.options.syntax.deadLetterOf(delivery.source)
    await this.options.deadLetter(delivery, { ...failure, error }, destination)
    this.forget(delivery)
    this.options.count('dead_lettered')
    this.options.log.warn({
      ...delivery.where, dlq: destination, errorType: failure.type, attempts: failure.attempts, error: failure.error
    }, `${this.options.broker} message dead-lettered`)
    return 'dead-lettered'
  }
}

function issuesText (issues: ReadonlyArray<{ path: PropertyKey[], message: string }>): string {
  return issues.map((issue) => `${issue.path.length === 0 ? '(value)' : issue.path.map(String).join('.')}: ${issue.message}`).join('; ')
}
