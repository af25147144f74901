import { compileRoomTemplate, type RoomTemplate } from './template.js'

/** Message headers as kafkajs hands them over. */
export type RawHeaders = Record<string, Buffer | string | Array<Buffer | string> | undefined>

/** One consumed message, as the consumer hands it to the processor. */
export interface RawMessage {
  topic: string
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers?: RawHeaders
  timestamp?: string
}

/** What a handler receives. */
export interface KafkaMessage<T = unknown> {
  /** the JSON value, parsed (and transformed) by the handler's schema when it has one */
  value: T
  /** the key as UTF-8 text, or null */
  key: string | null
  /** headers as UTF-8 text; a header sent several times is an array */
  headers: Record<string, string | string[]>
  topic: string
  partition: number
  offset: string
  /** 1 on the first try, 2 on the first retry, ... */
  attempt: number
  /** aborted when the app closes: a long handler may stop early (the message is then delivered again later) */
  signal: AbortSignal
}

export type KafkaHandler<T = unknown> = (message: KafkaMessage<T>) => unknown

/** The part of a zod schema the processor uses (any zod 4 schema fits). */
export interface MessageSchema<T = unknown> {
  safeParse (value: unknown): { success: true, data: T } | { success: false, error: { issues: ReadonlyArray<{ path: PropertyKey[], message: string }> } }
}

/** The record written to `<topic><dlqSuffix>`: the original key and bytes, and why. */
export interface DeadLetter {
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string | Buffer | Array<string | Buffer>>
}

/** Why a message was dead-lettered (the `error-type` header). */
export type FailureType = 'not-json' | 'schema' | 'template' | 'handler' | 'bridge'

export interface ProcessorLog {
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

export interface ProcessorOptions {
  /** retries after a failed handler (or room publish) before the message is dead-lettered */
  retries: number
  /** wait before the first retry; doubles each retry, at most `retryBackoffMaxMs` */
  retryBackoffMs: number
  retryBackoffMaxMs?: number
  /** dead-letter topic of `t` is `t + dlqSuffix` */
  dlqSuffix: string
  /** bridge delivery: publish `data` as event `event` to `room` */
  publish: (room: string, event: string, data: unknown) => unknown
  /** writes a dead letter; a rejection leaves the message unhandled (it is not committed and comes again) */
  deadLetter: (letter: DeadLetter) => Promise<unknown>
  log: ProcessorLog
}

/** handled (or dead-lettered): commit it; ignored: nothing here consumes it, commit it; abandoned: shutting down, do not commit */
export type Outcome = 'handled' | 'dead-lettered' | 'ignored' | 'abandoned'

interface HandlerRoute {
  readonly match: string | RegExp
  readonly handler: KafkaHandler<any>
  readonly schema: MessageSchema | undefined
}

interface BridgeRoute {
  readonly topic: string
  readonly template: RoomTemplate
}

interface Failure {
  type: FailureType
  error: string
  attempts: number
}

const MAX_ERROR_HEADER = 1000

/**
 * Turns consumed messages into handler calls and room publishes: JSON decoding, schema checks, bounded retries
 * with exponential backoff, and dead letters. Every handler and bridge rule matching a message runs (in
 * registration order, bridges last); each retries on its own, so one that already succeeded is not repeated.
 * A message that cannot succeed (not JSON, schema or template failure) is not retried. If anything failed, ONE
 * dead letter carries the original bytes, key and headers plus `error`, `error-type`, `attempts`,
 * `original-topic`, `original-partition`, `original-offset` (and `original-timestamp`).
 */
export class MessageProcessor {
  private readonly handlers: HandlerRoute[] = []
  private readonly bridges: BridgeRoute[] = []
  private readonly options: Required<ProcessorOptions>

  constructor (options: ProcessorOptions) {
    this.options = { retryBackoffMaxMs: Math.max(30_000, options.retryBackoffMs), ...options }
  }

  on (match: string | RegExp, handler: KafkaHandler<any>, schema?: MessageSchema): void {
    // a global or sticky RegExp keeps state between test() calls: match with a plain copy
    const plain = match instanceof RegExp ? new RegExp(match.source, match.flags.replace(/[gy]/g, '')) : match
    this.handlers.push({ match: plain, handler, schema })
  }

  bridge (topic: string, template: string): void {
    this.bridges.push({ topic, template: compileRoomTemplate(template) })
  }

  /** What the consumer subscribes to: topic names (once each) and RegExps. */
  subscriptions (): Array<string | RegExp> {
    const topics = new Set<string>()
    const patterns = new Map<string, RegExp>()
    for (const { match } of this.handlers) {
      if (typeof match === 'string') topics.add(match)
      else patterns.set(String(match), match)
    }
    for (const { topic } of this.bridges) topics.add(topic)
    return [...topics, ...patterns.values()]
  }

  /** The dead-letter topic of `topic`. */
  dlqTopic (topic: string): string {
    return `${topic}${this.options.dlqSuffix}`
  }

  /**
   * Handles one message. Resolves with what to do about its offset; rejects only when a dead letter could not be
   * written (the message must then NOT be committed: a redelivery beats a loss).
   */
  async process (message: RawMessage, signal: AbortSignal): Promise<Outcome> {
    const { topic } = message
    // a RegExp never matches a dead-letter topic: a failing catch-all handler would feed on its own dead letters
    const isDlq = topic.endsWith(this.options.dlqSuffix)
    const handlers = this.handlers.filter(({ match }) => typeof match === 'string' ? match === topic : !isDlq && match.test(topic))
    const bridges = this.bridges.filter((rule) => rule.topic === topic)
    if (handlers.length === 0 && bridges.length === 0) return 'ignored'

    let value: unknown
    try {
      value = message.value === null ? null : JSON.parse(message.value.toString('utf8'))
    } catch (err) {
      return await this.deadLetter(message, { type: 'not-json', error: `the value is not JSON: ${errorText(err)}`, attempts: 0 })
    }

    const failures: Failure[] = []
    const base = { key: message.key === null ? null : message.key.toString('utf8'), headers: textHeaders(message.headers), topic, partition: message.partition, offset: message.offset, signal }
    for (const route of handlers) {
      let input = value
      if (route.schema !== undefined) {
        const parsed = route.schema.safeParse(value)
        if (!parsed.success) {
          failures.push({ type: 'schema', error: `the value does not match the schema: ${issuesText(parsed.error.issues)}`, attempts: 0 })
          continue
        }
        input = parsed.data
      }
      const result = await this.attempt(message, (attempt) => route.handler({ ...base, value: input, attempt }), signal)
      if (result === 'abandoned') return 'abandoned'
      if (result !== true) failures.push({ type: 'handler', ...result })
    }
    for (const rule of bridges) {
      let room: string
      try {
        room = rule.template.fill(value)
      } catch (err) {
        failures.push({ type: 'template', error: errorText(err), attempts: 0 })
        continue
      }
      const result = await this.attempt(message, () => this.options.publish(room, topic, value), signal)
      if (result === 'abandoned') return 'abandoned'
      if (result !== true) failures.push({ type: 'bridge', ...result })
    }
    if (failures.length === 0) return 'handled'
    return await this.deadLetter(message, failures[0], failures.length)
  }

  /** Runs `fn` until it succeeds or the retries are used up; 'abandoned' when closing cut a backoff short. */
  private async attempt (message: RawMessage, fn: (attempt: number) => unknown, signal: AbortSignal): Promise<true | 'abandoned' | { error: string, attempts: number }> {
    const { retries, retryBackoffMs, retryBackoffMaxMs } = this.options
    for (let attempt = 1; ; attempt++) {
      try {
        await fn(attempt)
        return true
      } catch (err) {
        const where = { topic: message.topic, partition: message.partition, offset: message.offset, attempt }
        if (attempt > retries) {
          this.options.log.warn({ err, ...where }, 'kafka message failed after its last retry')
          return { error: errorText(err), attempts: attempt }
        }
        this.options.log.warn({ err, ...where }, 'kafka message failed; retrying')
      }
      const delay = Math.min(retryBackoffMaxMs, retryBackoffMs * 2 ** (attempt - 1))
      if (!(await sleep(delay, signal))) return 'abandoned'
    }
  }

  private async deadLetter (message: RawMessage, failure: Failure, count = 1): Promise<Outcome> {
    const headers: DeadLetter['headers'] = {}
    for (const [name, raw] of Object.entries(message.headers ?? {})) {
      if (raw !== undefined) headers[name] = raw
    }
    const error = count > 1 ? `${failure.error} (and ${count - 1} more failure${count > 2 ? 's' : ''})` : failure.error
    Object.assign(headers, {
      error: error.length > MAX_ERROR_HEADER ? `${error.slice(0, MAX_ERROR_HEADER - 1)}…` : error,
      'error-type': failure.type,
      attempts: String(failure.attempts),
      'original-topic': message.topic,
      'original-partition': String(message.partition),
      'original-offset': message.offset
    })
    if (message.timestamp !== undefined) headers['original-timestamp'] = message.timestamp
    const dlq = this.dlqTopic(message.topic)
    await this.options.deadLetter({ topic: dlq, key: message.key, value: message.value, headers })
    this.options.log.warn({
      topic: message.topic, partition: message.partition, offset: message.offset, dlq, errorType: failure.type, attempts: failure.attempts, error
    }, 'kafka message dead-lettered')
    return 'dead-lettered'
  }
}

/** Resolves true after `ms`, false at once (or as soon as) `signal` aborts. */
export function sleep (ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export function textHeaders (headers: RawHeaders | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, raw] of Object.entries(headers ?? {})) {
    if (raw === undefined) continue
    out[name] = Array.isArray(raw) ? raw.map((v) => v.toString()) : raw.toString()
  }
  return out
}

function errorText (err: unknown): string {
  if (err instanceof Error) return err.message || err.name
  return String(err)
}

function issuesText (issues: ReadonlyArray<{ path: PropertyKey[], message: string }>): string {
  return issues.map((issue) => `${issue.path.length === 0 ? '(value)' : issue.path.map(String).join('.')}: ${issue.message}`).join('; ')
}
