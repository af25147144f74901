import { kafkaTopics } from '../streams/patterns.js'
import { StreamProcessor, type CountedOutcome, type Delivery, type Failure, type MessageSchema, type Outcome as StreamOutcome, type ProcessorLog } from '../streams/processor.js'

export { sleep } from '../streams/async.js'
export type { MessageSchema, ProcessorLog, FailureType } from '../streams/processor.js'

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

/** The record written to `<topic><dlqSuffix>`: the original key and bytes, and why. */
export interface DeadLetter {
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string | Buffer | Array<string | Buffer>>
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
  /** counts outcomes for metrics */
  count?: (outcome: CountedOutcome) => void
}

/** handled (or dead-lettered): commit it; ignored: nothing here consumes it, commit it; abandoned: shutting down, do not commit */
export type Outcome = Exclude<StreamOutcome, 'retry'>

type KafkaFields = Omit<KafkaMessage, 'value' | 'attempt' | 'signal'>

/**
 * Kafka's side of the shared stream processor (lib/streams/processor.ts): messages retried in place (a partition
 * cannot skip one), dead letters on `<topic><dlqSuffix>` with the original bytes, key and headers plus `error`,
 * `error-type`, `attempts`, `original-topic`, `original-partition`, `original-offset` (and `original-timestamp`).
 */
export class MessageProcessor {
  private readonly core: StreamProcessor<KafkaFields, RawMessage>
  private readonly dlqSuffix: string

  constructor (options: ProcessorOptions) {
    this.dlqSuffix = options.dlqSuffix
    this.core = new StreamProcessor<KafkaFields, RawMessage>({
      broker: 'kafka',
      syntax: kafkaTopics(options.dlqSuffix),
      mode: 'inline',
      retries: options.retries,
      retryBackoffMs: options.retryBackoffMs,
      ...(options.retryBackoffMaxMs === undefined ? {} : { retryBackoffMaxMs: options.retryBackoffMaxMs }),
      publish: options.publish,
      deadLetter: (delivery, failure, topic) => options.deadLetter(deadLetterOf(delivery.raw, failure, topic)),
      log: options.log,
      ...(options.count === undefined ? {} : { count: options.count })
    })
  }

  on (match: string | RegExp, handler: KafkaHandler<never>, schema?: MessageSchema): void {
    this.core.on(match, handler, schema)
  }

  bridge (topic: string, template: string): void {
    this.core.bridge(topic, template)
  }

  /** What the consumer subscribes to: topic names (once each) and RegExps. */
  subscriptions (): Array<string | RegExp> {
    return this.core.subscriptions()
  }

  /** The dead-letter topic of `topic`. */
  dlqTopic (topic: string): string {
    return `${topic}${this.dlqSuffix}`
  }

  /**
   * Handles one message. Resolves with what to do about its offset; rejects only when a dead letter could not be
   * written (the message must then NOT be committed: a redelivery beats a loss).
   */
  async process (message: RawMessage, signal: AbortSignal): Promise<Outcome> {
    const delivery: Delivery<KafkaFields, RawMessage> = {
      source: message.topic,
      payload: message.value,
      fields: {
        key: message.key === null ? null : message.key.toString('utf8'),
        headers: textHeaders(message.headers),
        topic: message.topic,
        partition: message.partition,
        offset: message.offset
      },
      where: { topic: message.topic, partition: message.partition, offset: message.offset },
      raw: message
    }
    return await this.core.process(delivery, signal) as Outcome
  }
}

function deadLetterOf (message: RawMessage, failure: Failure, topic: string): DeadLetter {
  const headers: DeadLetter['headers'] = {}
  for (const [name, raw] of Object.entries(message.headers ?? {})) {
    if (raw !== undefined) headers[name] = raw
  }
  Object.assign(headers, {
    error: failure.error,
    'error-type': failure.type,
    attempts: String(failure.attempts),
    'original-topic': message.topic,
    'original-partition': String(message.partition),
    'original-offset': message.offset
  })
  if (message.timestamp !== undefined) headers['original-timestamp'] = message.timestamp
  return { topic, key: message.key, value: message.value, headers }
}

export function textHeaders (headers: RawHeaders | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, raw] of Object.entries(headers ?? {})) {
    if (raw === undefined) continue
    out[name] = Array.isArray(raw) ? raw.map((v) => v.toString()) : raw.toString()
  }
  return out
}
