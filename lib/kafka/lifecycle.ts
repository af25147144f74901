import { connect as netConnect } from 'node:net'
import type {
  Consumer, ConsumerConfig, EachBatchPayload, Kafka, Message, Producer, ProducerConfig, RecordMetadata
} from 'kafkajs'
import { GatewayErrors } from '../errors.js'
import { keepAlive, restartLoop, settlesBy, sleep } from '../streams/async.js'
import type { MessageProcessor, ProcessorLog } from './processor.js'

export interface LifecycleLog extends ProcessorLog {
  info (obj: object, msg: string): void
}

export interface KafkaLifecycleOptions {
  /** a kafkajs client (only `consumer()` and `producer()` are used) */
  kafka: Pick<Kafka, 'consumer' | 'producer'>
  groupId: string
  /** consumer settings besides the group (sessionTimeout, heartbeatInterval, maxWaitTimeInMs, ...) */
  consumer: Omit<ConsumerConfig, 'groupId'>
  producer?: ProducerConfig
  /** where a group new to a topic starts: its first message (true) or new messages only (false) */
  fromBeginning: boolean
  processor: MessageProcessor
  log: LifecycleLog
  /**
   * The broker list, checked with a plain TCP connect before each (re)start, so an absent cluster costs neither
   * kafkajs's long connect retries nor a slow close. null skips the check (a custom socketFactory).
   */
  brokers: (() => Promise<string[]>) | null
  /** TCP connect timeout of that check */
  connectionTimeout?: number
  /** wait before restarting after a failure; doubles per failure up to `restartBackoffMaxMs` */
  restartBackoffMs?: number
  restartBackoffMaxMs?: number
  /** longest close waits for the in-flight message, the last commit and pending sends; default 5000 */
  closeTimeoutMs?: number
}

/** Why the consumer loop ended one round. */
const STOPPED = Symbol('stopped')

/**
 * One consumer and one producer over their whole life: started in the background (start-up never waits for a
 * broker), restarted with backoff after any failure or crash, ready only while the producer is connected and the
 * consumer is in its group and hears from the brokers, and stopped in order on close (the in-flight message
 * finishes, handled offsets are committed, pending sends settle, then the producer disconnects).
 *
 * Offsets: eachBatch with autoCommit on and eachBatchAutoResolve off, so kafkajs commits exactly the offsets
 * resolved here, and an offset is resolved only once its message was handled or dead-lettered. A long handler
 * keeps the member alive with heartbeats every `heartbeatInterval`.
 */
export class KafkaLifecycle {
  private readonly producer: Producer
  private readonly abort = new AbortController()
  private readonly pendingSends = new Set<Promise<unknown>>()
  private readonly detachProducer: Array<() => void>
  private consumer: Consumer | null = null
  private subscriptions: Array<string | RegExp> = []
  private producerConnected = false
  private joined = false
  private lastContact = 0
  private started = false
  private stopping = false
  private stopped: Promise<void> | null = null
  private readonly staleAfterMs: number
  private readonly heartbeatInterval: number

  constructor (private readonly options: KafkaLifecycleOptions) {
    this.producer = options.kafka.producer({ allowAutoTopicCreation: true, ...options.producer })
    const { events } = this.producer
    this.detachProducer = [
      this.producer.on(events.CONNECT, () => { this.producerConnected = true }),
      this.producer.on(events.DISCONNECT, () => { this.producerConnected = false })
    ]
    const sessionTimeout = options.consumer.sessionTimeout ?? 30_000
    this.heartbeatInterval = options.consumer.heartbeatInterval ?? 3000
    // a member that heard nothing from the brokers for a session timeout is out of its group anyway
    this.staleAfterMs = Math.max(sessionTimeout, 2 * (options.consumer.maxWaitTimeInMs ?? 5000))
  }

  /** Starts connecting in the background; returns at once. */
  start (): void {
    if (this.started) return
    this.started = true
    this.subscriptions = this.options.processor.subscriptions()
    this.loop().catch((err) => { this.options.log.error({ err }, 'kafka: the connection loop failed') })
  }

  /** True while the producer is connected and (when anything is consumed) the consumer is live in its group. */
  isReady (): boolean {
    if (!this.started || this.stopping || !this.producerConnected) return false
    if (this.subscriptions.length === 0) return true
    return this.joined && Date.now() - this.lastContact <= this.staleAfterMs
  }

  /**
   * Produces messages; rejects with GW_KAFKA_UNAVAILABLE when closed or not connected (kafkajs's own errors when
   * the brokers fail a send). Closing waits for sends already under way.
   */
  send (topic: string, messages: Message[]): Promise<RecordMetadata[]> {
    if (this.stopped !== null) return Promise.reject(new GatewayErrors.KAFKA_UNAVAILABLE('the producer is closed'))
    if (!this.producerConnected) return Promise.reject(new GatewayErrors.KAFKA_UNAVAILABLE('the producer is not connected yet'))
    const sending = this.producer.send({ topic, messages })
    this.pendingSends.add(sending)
    const forget = () => { this.pendingSends.delete(sending) }
    sending.then(forget, forget)
    return sending
  }

  /**
   * Stops consuming (the in-flight message finishes), commits, lets pending sends settle, disconnects. Waits at most
   * `closeTimeoutMs` for all of that (brokers that stopped answering would hold it for kafkajs's request timeouts);
   * what was not committed by then is delivered again later.
   */
  stop (): Promise<void> {
    if (this.stopped !== null) return this.stopped
    this.stopping = true
    this.abort.abort()
    this.stopped = (async () => {
      const { log } = this.options
      const timeoutMs = this.options.closeTimeoutMs ?? 5000
      const deadline = Date.now() + timeoutMs
      const consumer = this.consumer
      const drained = (async () => {
        if (consumer !== null) await consumer.disconnect().catch((err) => { log.warn({ err }, 'kafka: consumer disconnect failed') })
        // handlers may have emitted until the consumer stopped
        await Promise.allSettled([...this.pendingSends])
      })()
      if (!(await settlesBy(drained, deadline))) {
        log.warn({ timeoutMs }, 'kafka: close gave up waiting for the brokers; what was not committed is delivered again')
      }
      const disconnected = this.producer.disconnect().catch((err) => { log.warn({ err }, 'kafka: producer disconnect failed') })
      await settlesBy(disconnected, Math.max(deadline, Date.now() + 1000))
      for (const detach of this.detachProducer) detach()
      this.joined = false
      this.producerConnected = false
    })()
    return this.stopped
  }

  private async loop (): Promise<void> {
    const { log } = this.options
    await restartLoop({
      signal: this.abort.signal,
      backoffMs: this.options.restartBackoffMs ?? 500,
      backoffMaxMs: this.options.restartBackoffMaxMs ?? 10_000,
      round: async () => {
        await this.checkReachable()
        if (!this.producerConnected) {
          await this.producer.connect()
          // a connect that finished after close began must not leave the producer open
          if (this.stopping) await this.producer.disconnect()
        }
        if (this.stopping) return false
        if (this.subscriptions.length === 0) {
          await sleep(2 ** 31 - 1, this.abort.signal)
          return true
        }
        return await this.runConsumer()
      },
      onError: (err, failures) => { log.warn({ err, failures }, 'kafka: cannot connect; retrying') }
    })
  }

  /** One consumer from connect to crash (or close); true when it joined its group. */
  private async runConsumer (): Promise<boolean> {
    const { kafka, groupId, log } = this.options
    const consumer = kafka.consumer({
      ...this.options.consumer,
      groupId,
      // this loop restarts a crashed consumer itself (fresh connections, broker list asked again)
      retry: { ...this.options.consumer.retry, restartOnFailure: async () => false }
    })
    this.consumer = consumer
    let joined = false
    const touch = () => { this.lastContact = Date.now() }
    const { events } = consumer
    let onCrash: (err: unknown) => void = () => {}
    const crashed = new Promise<unknown>((resolve) => { onCrash = resolve })
    const detach = [
      consumer.on(events.GROUP_JOIN, (event) => {
        this.joined = true
        joined = true
        touch()
        log.info({ groupId, memberId: event.payload.memberId, assignment: event.payload.memberAssignment }, 'kafka: consumer joined its group')
      }),
      consumer.on(events.REQUEST, touch),
      consumer.on(events.HEARTBEAT, touch),
      consumer.on(events.FETCH, touch),
      consumer.on(events.DISCONNECT, () => { this.joined = false }),
      consumer.on(events.STOP, () => { this.joined = false }),
      consumer.on(events.CRASH, (event) => {
        this.joined = false
        onCrash(event.payload.error)
      })
    ]
    const stopped = new Promise<typeof STOPPED>((resolve) => {
      if (this.abort.signal.aborted) resolve(STOPPED)
      else this.abort.signal.addEventListener('abort', () => { resolve(STOPPED) }, { once: true })
    })
    try {
      await consumer.connect()
      if (this.stopping) return joined
      await consumer.subscribe({ topics: this.subscriptions, fromBeginning: this.options.fromBeginning })
      if (this.stopping) return joined
      await consumer.run({
        autoCommit: true,
        autoCommitInterval: 5000,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.eachBatch(payload)
      })
      const reason = await Promise.race([crashed, stopped])
      if (reason !== STOPPED) log.error({ err: reason }, 'kafka: consumer crashed; restarting')
      return joined
    } finally {
      this.joined = false
      // on close, stop() disconnects this consumer; a second disconnect shares kafkajs's stop and is harmless
      await consumer.disconnect().catch(() => {})
      for (const off of detach) off()
      if (this.consumer === consumer && !this.stopping) this.consumer = null
    }
  }

  private async eachBatch ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload): Promise<void> {
    for (const message of batch.messages) {
      if (this.stopping || !isRunning() || isStale()) break
      // a long handler (or its retries) must not cost the member its place in the group
      const stopBeat = keepAlive(this.heartbeatInterval, heartbeat)
      let outcome
      try {
        outcome = await this.options.processor.process({
          topic: batch.topic,
          partition: batch.partition,
          offset: message.offset,
          key: message.key ?? null,
          value: message.value ?? null,
          headers: message.headers,
          timestamp: message.timestamp
        }, this.abort.signal)
      } finally {
        stopBeat()
      }
      // closing cut its retries short: leave it uncommitted, it is delivered again
      if (outcome === 'abandoned') break
      resolveOffset(message.offset)
      await commitOffsetsIfNecessary()
      // throws when the group is rebalancing: kafkajs commits what was resolved and rejoins
      await heartbeat()
    }
  }

  private async checkReachable (): Promise<void> {
    if (this.options.brokers === null) return
    const brokers = await this.options.brokers()
    const timeout = this.options.connectionTimeout ?? 1000
    for (const broker of brokers) {
      if (await canConnect(broker, timeout, this.abort.signal)) return
    }
    throw new Error(`no broker accepts connections (${brokers.join(',')})`)
  }
}

/** True when a TCP connection to `host:port` opens within `timeoutMs`. */
export function canConnect (broker: string, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  const colon = broker.lastIndexOf(':')
  const host = broker.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  const port = Number(broker.slice(colon + 1))
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535 || signal.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const socket = netConnect({ host, port })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(ok)
    }
    const onAbort = () => { done(false) }
    const timer = setTimeout(() => { done(false) }, timeoutMs)
    signal.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => { done(true) })
    socket.once('error', () => { done(false) })
  })
}
