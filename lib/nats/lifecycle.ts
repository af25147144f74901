import type { ConnectionOptions, ConsumerConfig, JetStreamManager, JsMsg, MsgHdrs, NatsConnection, PubAck, StreamConfig } from 'nats'
import { GatewayErrors } from '../errors.js'
import { errorText, keepAlive, restartLoop, settlesBy } from '../streams/async.js'
import type { Delivery, StreamLog, StreamProcessor } from '../streams/processor.js'

type Nats = typeof import('nats')

/** What a NATS handler receives besides `value`, `attempt` and `signal`. */
export interface NatsFields {
  /** the message's actual subject (`orders.o1.status`, not the pattern) */
  subject: string
  /** the values of the pattern's `*` tokens, in order */
  wildcards: string[]
  /** headers as text; a header sent several times is an array */
  headers: Record<string, string | string[]>
  /** the stream and the message's sequence in it */
  stream: string
  seq: number
}

export type NatsProcessor = StreamProcessor<NatsFields, JsMsg>

export interface NatsLifecycleOptions {
  nats: Pick<Nats, 'connect' | 'headers' | 'AckPolicy' | 'DeliverPolicy' | 'nanos' | 'StorageType'>
  /** `nats://host:port` servers */
  servers: string[]
  /** nats.js settings passed through (user, pass, token, tls, name...) */
  connectionOptions: ConnectionOptions
  /** the host's own connection (left open on close); else one is opened */
  connection?: NatsConnection
  /** the stream that holds the bridged subjects, created or extended with them */
  stream: string
  /** the stream that holds the dead letters (`dlq.<subject>`), created or extended with them */
  dlqStream: string
  /** the durable consumer shared by every instance */
  durable: string
  /** settings for a stream this creates (max_age, max_bytes, replicas...) */
  streamConfig: Partial<StreamConfig>
  /** a new consumer starts at the stream's first message (true) or at new messages (false) */
  fromBeginning: boolean
  /** the consumer's ack wait: a message not acknowledged by then is delivered again (a long handler extends it) */
  ackWaitMs: number
  /** most messages pulled and not yet acknowledged per instance */
  maxAckPending: number
  reconnectBackoffMs: number
  reconnectBackoffMaxMs: number
  processor: NatsProcessor
  log: StreamLog
  closeTimeoutMs: number
}

const HEADER_LIMIT = 1000

/**
 * One NATS connection and one JetStream pull consumer over their whole life. Started in the background (start-up
 * never waits for a server); the first connect is retried here with a backoff, and nats.js reconnects forever after
 * (`maxReconnectAttempts: -1`). Each round makes sure the streams and the durable consumer exist, then consumes
 * until the consumer fails (deleted, server restarted without its data...), and the next round sets them up again.
 * It pulls in batches (`fetch`, at most `maxAckPending` messages, expiring after 1 s).
 *
 * Messages are handled one at a time: ack after handling, `nak(delay)` for a retry (the server delivers it again
 * after the backoff, to this or another instance), and after the last attempt a dead letter published to
 * `dlq.<subject>` through JetStream (its ack awaited) before the original is terminated. A long handler tells the
 * server it is still `working()`. Closing stops pulling, finishes the message in hand, releases (`nak`) those pulled
 * but not started (waiting for the batch to end, at most 1 s), and drains the connection.
 */
export class NatsLifecycle {
  private nc: NatsConnection | null = null
  private readonly abort = new AbortController()
  private readonly pendingEmits = new Set<Promise<unknown>>()
  private started = false
  private stopping = false
  private stopped: Promise<void> | null = null
  private connected = false
  private consuming = false
  private inFlight: Promise<unknown> | null = null
  private loop: Promise<void> | null = null

  constructor (private readonly options: NatsLifecycleOptions) {}

  /** Starts connecting in the background; returns at once. */
  start (): void {
    if (this.started) return
    this.started = true
    const { log } = this.options
    this.loop = restartLoop({
      signal: this.abort.signal,
      backoffMs: this.options.reconnectBackoffMs,
      backoffMaxMs: this.options.reconnectBackoffMaxMs,
      round: () => this.round(),
      onError: (err, failures) => {
        if (failures <= 1) log.warn({ err: { message: errorText(err) }, failures }, 'nats: cannot consume; retrying')
        else log.debug({ err: errorText(err), failures }, 'nats: still cannot consume')
      }
    }).catch((err: unknown) => { log.error({ err }, 'nats: the connection loop failed') })
  }

  /** True while connected and (when anything is consumed) the consumer is pulling. */
  isReady (): boolean {
    if (!this.started || this.stopping || this.nc === null || !this.connected) return false
    return this.options.processor.subscriptions().length === 0 || this.consuming
  }

  /** Publishes to JetStream and waits for its ack. Rejects with GW_STREAM_UNAVAILABLE when not connected or closed. */
  publish (subject: string, data: Uint8Array, headers?: MsgHdrs, msgID?: string): Promise<PubAck> {
    const nc = this.nc
    if (this.stopped !== null) return Promise.reject(new GatewayErrors.STREAM_UNAVAILABLE('nats', 'the connection is closed'))
    if (nc === null || !this.connected) return Promise.reject(new GatewayErrors.STREAM_UNAVAILABLE('nats', 'not connected'))
    const sending = nc.jetstream().publish(subject, data, { ...(headers === undefined ? {} : { headers }), ...(msgID === undefined ? {} : { msgID }) })
    this.pendingEmits.add(sending)
    const forget = () => { this.pendingEmits.delete(sending) }
    sending.then(forget, forget)
    return sending
  }

  /** Headers for a publish (nats.js's own class). */
  headers (): MsgHdrs {
    return this.options.nats.headers()
  }

  stop (): Promise<void> {
    if (this.stopped !== null) return this.stopped
    this.stopping = true
    this.abort.abort()
    this.stopped = (async () => {
      const { log, closeTimeoutMs } = this.options
      const deadline = Date.now() + closeTimeoutMs
      const drained = (async () => {
        await this.loop
        await this.inFlight
        await Promise.allSettled([...this.pendingEmits])
      })()
      if (!(await settlesBy(drained, deadline))) {
        log.warn({ timeoutMs: closeTimeoutMs }, 'nats: close gave up waiting; what was not acknowledged is delivered again')
      }
      const nc = this.nc
      if (nc !== null) {
        const own = this.options.connection === undefined
        const closing = own ? nc.drain() : nc.flush()
        if (!(await settlesBy(closing.catch(() => {}), Math.max(deadline, Date.now() + 500))) && own) await nc.close().catch(() => {})
      }
      this.connected = false
      this.consuming = false
    })()
    return this.stopped
  }

  /** One round: connect (once), set up the streams and the consumer, consume until it ends. */
  private async round (): Promise<boolean> {
    const nc = this.nc ?? await this.connect()
    if (this.stopping) return false
    const patterns = this.options.processor.subscriptions()
    if (patterns.length === 0) {
      await nc.closed()
      return true
    }
    const jsm = await nc.jetstreamManager()
    const subjects = await this.ensureStream(jsm, patterns)
    if (this.stopping) return false
    await this.ensureConsumer(jsm, nc, subjects, patterns)
    if (this.stopping) return false
    const consumer = await nc.jetstream().consumers.get(this.options.stream, this.options.durable)
    this.consuming = true
    this.options.log.info({ stream: this.options.stream, durable: this.options.durable }, 'nats: consuming')
    try {
      // pull batches: a batch ends when it is full or the server expires the request (after at most 1 s), so
      // closing never cuts off a message the server already sent; those pulled but not started are released
      while (!this.stopping) {
        const batch = await consumer.fetch({ max_messages: this.options.maxAckPending, expires: 1000 })
        // released once the batch ended: a nak while it is open would bring the message straight back into it
        const release: JsMsg[] = []
        for await (const message of batch) {
          if (this.stopping) {
            release.push(message)
            continue
          }
          this.inFlight = this.handle(message)
          await this.inFlight
          this.inFlight = null
        }
        for (const message of release) message.nak()
        const ended = await batch.closed()
        if (ended instanceof Error) throw ended
      }
    } finally {
      this.consuming = false
    }
    return true
  }

  private async connect (): Promise<NatsConnection> {
    const { nats, log } = this.options
    const nc = this.options.connection ?? await nats.connect({
      name: 'fastify-gateways',
      ...this.options.connectionOptions,
      servers: this.options.servers,
      // the first connect is retried by the round loop (with a backoff that close can cut short); after it, forever
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.options.reconnectBackoffMs
    })
    if (this.stopping && this.options.connection === undefined) {
      await nc.close()
      return nc
    }
    this.nc = nc
    this.connected = !nc.isClosed()
    log.info({ server: nc.getServer() }, 'nats: connected')
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false
          if (!this.stopping) log.warn({ server: status.data }, 'nats: disconnected; reconnecting')
        } else if (status.type === 'reconnect') {
          this.connected = true
          log.info({ server: status.data }, 'nats: reconnected')
        }
      }
    })().catch(() => {})
    void nc.closed().then(() => { this.connected = false })
    return nc
  }

  /**
   * Makes `stream` hold the subjects of the string patterns (created with them, or extended), and the dead-letter
   * stream hold `dlq.<subject>` of each. A subject already held by another stream is left there. Resolves with the
   * subjects of the stream.
   */
  private async ensureStream (jsm: JetStreamManager, patterns: Array<string | RegExp>): Promise<string[]> {
    const { stream, dlqStream, processor } = this.options
    const wanted = patterns.filter((p): p is string => typeof p === 'string')
    const subjects = await this.hold(jsm, stream, wanted, `the stream ${stream} must exist for RegExp handlers, or give handlers subjects`)
    await this.hold(jsm, dlqStream, subjects.map((subject) => processor.syntax.deadLetterOf(subject)), null)
    return subjects
  }

  private async hold (jsm: JetStreamManager, name: string, wanted: string[], needed: string | null): Promise<string[]> {
    const { log, streamConfig, nats } = this.options
    const info = await jsm.streams.info(name).catch((err: unknown) => {
      if (errorText(err).includes('stream not found')) return null
      throw err
    })
    const have = info?.config.subjects ?? []
    const missing: string[] = []
    for (const subject of wanted) {
      if (have.includes(subject)) continue
      const holder = await jsm.streams.find(subject).catch(() => null)
      if (holder === null) missing.push(subject)
      else if (holder !== name) log.info({ subject, stream: holder }, 'nats: another stream already holds this subject')
    }
    if (info === null) {
      if (missing.length === 0) {
        if (needed !== null && wanted.length === 0) throw new Error(needed)
        return []
      }
      await jsm.streams.add({ storage: nats.StorageType.File, ...streamConfig, name, subjects: missing })
      log.info({ stream: name, subjects: missing }, 'nats: stream created')
      return missing
    }
    if (missing.length === 0) return have
    const subjects = [...have, ...missing]
    await jsm.streams.update(name, { ...info.config, subjects })
    log.info({ stream: name, added: missing }, 'nats: stream extended')
    return subjects
  }

  private async ensureConsumer (jsm: JetStreamManager, nc: NatsConnection, subjects: string[], patterns: Array<string | RegExp>): Promise<void> {
    const { stream, durable, nats, ackWaitMs, maxAckPending, fromBeginning, log } = this.options
    const wanted = patterns.some((p) => p instanceof RegExp) ? [] : patterns as string[]
    // only what the stream holds beyond our subjects needs a filter; several filters need a 2.10 server
    const extra = subjects.some((subject) => !wanted.includes(subject))
    const filter: Partial<ConsumerConfig> = {}
    if (extra && wanted.length === 1) filter.filter_subject = wanted[0]
    else if (extra && wanted.length > 1 && atLeast(nc.info?.version ?? '0.0.0', 2, 10)) filter.filter_subjects = wanted
    const existing = await jsm.consumers.info(stream, durable).catch((err: unknown) => {
      if (errorText(err).includes('consumer not found')) return null
      throw err
    })
    if (existing === null) {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: nats.AckPolicy.Explicit,
        deliver_policy: fromBeginning ? nats.DeliverPolicy.All : nats.DeliverPolicy.New,
        ack_wait: nats.nanos(ackWaitMs),
        // the gateway counts deliveries itself (dead letter after the last retry)
        max_deliver: -1,
        max_ack_pending: Math.max(maxAckPending * 2, 1000),
        ...filter
      })
      log.info({ stream, durable, ...filter }, 'nats: durable consumer created')
      return
    }
    const config = existing.config
    const same = config.filter_subject === filter.filter_subject &&
      JSON.stringify(config.filter_subjects ?? []) === JSON.stringify(filter.filter_subjects ?? []) &&
      config.ack_wait === nats.nanos(ackWaitMs)
    if (!same) {
      await jsm.consumers.update(stream, durable, { ...filter, ack_wait: nats.nanos(ackWaitMs) }).catch((err: unknown) => {
        log.warn({ err: errorText(err), stream, durable }, 'nats: cannot update the durable consumer; it keeps its settings')
      })
    }
  }

  private async handle (message: JsMsg): Promise<void> {
    const { processor, log, ackWaitMs } = this.options
    const subject = message.subject
    const delivery: Delivery<NatsFields, JsMsg> = {
      source: subject,
      payload: message.data.length === 0 ? null : Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength),
      fields: { subject, wildcards: [], headers: textHeaders(message.headers), stream: message.info.stream, seq: message.seq },
      where: { subject, seq: message.seq },
      attempt: message.info.redeliveryCount,
      id: `${message.info.stream}:${message.seq}`,
      raw: message
    }
    const stopBeat = keepAlive(Math.max(100, Math.floor(ackWaitMs / 2)), () => { message.working() })
    try {
      const outcome = await processor.process(delivery, this.abort.signal)
      if (outcome === 'retry') message.nak(processor.retryDelay(delivery.attempt ?? 1))
      else if (outcome === 'abandoned') message.nak()
      else if (outcome === 'dead-lettered') message.term()
      else message.ack()
    } catch (err) {
      // the dead letter could not be written: it comes again
      log.error({ err, subject, seq: message.seq }, 'nats: a message could not be handled nor dead-lettered; it is delivered again')
      message.nak(processor.retryDelay(delivery.attempt ?? 1))
    } finally {
      stopBeat()
    }
  }

  /** The dead letter of `message`: its original bytes and headers, the error in `error` (and more), through JetStream. */
  async deadLetter (message: JsMsg, failure: { type: string, error: string, attempts: number }, subject: string): Promise<void> {
    const headers = this.headers()
    if (message.headers !== undefined) {
      for (const [name, values] of message.headers) {
        // a copied dedupe id would make JetStream drop the dead letter
        if (name.toLowerCase() === 'nats-msg-id') continue
        for (const value of values) headers.append(name, value)
      }
    }
    const set = (name: string, value: string) => { headers.set(name, printable(value).slice(0, HEADER_LIMIT)) }
    set('error', failure.error)
    set('error-type', failure.type)
    set('attempts', String(failure.attempts))
    set('original-subject', message.subject)
    set('original-stream', message.info.stream)
    set('original-sequence', String(message.seq))
    await this.publish(subject, message.data, headers)
  }
}

export function textHeaders (headers: MsgHdrs | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  if (headers === undefined) return out
  for (const [name, values] of headers) out[name] = values.length === 1 ? values[0] : values
  return out
}

/** Header values carry no control characters (a CR or LF would end the header). */
function printable (text: string): string {
  return text.replace(/\p{Cc}/gu, '?')
}

function atLeast (version: string, major: number, minor: number): boolean {
  const [a, b] = version.split('.').map(Number)
  return a > major || (a === major && b >= minor)
}
