import type { IClientOptions, IClientPublishOptions, IPublishPacket, MqttClient } from 'mqtt'
import { GatewayErrors } from '../errors.js'
import { backoffDelay, errorText, keepAlive, settlesBy } from '../streams/async.js'
import type { Delivery, StreamLog, StreamProcessor } from '../streams/processor.js'

/** What an MQTT handler receives besides `value`, `attempt` and `signal`. */
export interface MqttFields {
  /** the message's actual topic (`devices/d1/telemetry`, not the filter) */
  topic: string
  /** the values of the filter's `+` levels, in order */
  wildcards: string[]
  /** MQTT 5 publish properties (user properties, content type, response topic, correlation data...) */
  properties: NonNullable<IPublishPacket['properties']>
  qos: 0 | 1 | 2
  retain: boolean
  /** true when the broker delivers it again (after a reconnect) */
  dup: boolean
}

export type MqttProcessor = StreamProcessor<MqttFields, IPublishPacket>

export interface MqttLifecycleOptions {
  /** MQTT.js's `connect` */
  connect: (url: string, options: IClientOptions) => MqttClient
  url: string
  /** MQTT.js settings passed through (username, password, TLS, connectTimeout...) */
  clientOptions: IClientOptions
  /** a host's own client for emits and dead letters (not closed here); else one is opened */
  producer?: MqttClient
  /** the consuming connection's client id: keep it stable per instance, its session holds what was not acknowledged */
  clientId: string
  /** shared-subscription group: every filter is subscribed as `$share/<group>/<filter>` */
  group: string
  /** how long the broker keeps the session (and queues for it) after a disconnect */
  sessionExpiryS: number
  /** most unacknowledged messages the broker sends at once */
  receiveMaximum: number
  keepaliveS: number
  reconnectBackoffMs: number
  reconnectBackoffMaxMs: number
  processor: MqttProcessor
  log: StreamLog
  /** longest close waits for the in-flight message and pending emits */
  closeTimeoutMs: number
  /** a publish (emit or dead letter) without its PUBACK after this long rejects (it may still arrive: at least once) */
  publishTimeoutMs: number
}

/**
 * Two MQTT 5 connections over their whole life: a consumer with a persistent session (clean start off, a session
 * expiry) subscribed at QoS 1 through shared subscriptions, and a producer for emits and dead letters.
 *
 * "Done only after handling": MQTT.js hands each QoS 1 PUBLISH to `customHandleAcks` and sends its PUBACK only when
 * that callback is called, which happens here after the processor handled (or dead-lettered) the message. MQTT.js
 * reads the next packet only then, so messages are handled one at a time, in order, and PUBACKs leave in order
 * (MQTT 5, 4.6). Dead letters and emits go through the producer: the consumer's own PUBACKs from the broker would
 * wait behind the message being handled. A long handler keeps the connection alive with PINGREQs (its PINGRESPs are
 * read after it). What was not acknowledged stays in the session and comes again, with DUP set, when this client id
 * reconnects.
 */
export class MqttLifecycle {
  private consumer: MqttClient | null = null
  private producer: MqttClient | null = null
  private readonly ownProducer: boolean
  private readonly abort = new AbortController()
  private readonly pendingEmits = new Set<Promise<unknown>>()
  private subscribed = false
  private started = false
  private stopping = false
  private stopped: Promise<void> | null = null
  private inFlight: Promise<void> | null = null
  private consumerFailures = 0
  private producerFailures = 0
  private filters: string[] = []
  /** whether the broker takes subscription identifiers (CONNACK) */
  private identifiers = true

  constructor (private readonly options: MqttLifecycleOptions) {
    this.ownProducer = options.producer === undefined
  }

  /** Starts connecting in the background; returns at once. */
  start (): void {
    if (this.started) return
    this.started = true
    const { processor } = this.options
    this.filters = processor.subscriptions().map((pattern) => typeof pattern === 'string' ? pattern : processor.syntax.catchAll as string)
    this.filters = [...new Set(this.filters)]
    this.producer = this.options.producer ?? this.openProducer()
    if (this.filters.length > 0) this.consumer = this.openConsumer()
  }

  /** True while the producer is connected and (when anything is consumed) the consumer is subscribed. */
  isReady (): boolean {
    if (!this.started || this.stopping || this.producer?.connected !== true) return false
    if (this.filters.length === 0) return true
    return this.consumer?.connected === true && this.subscribed
  }

  /** Publishes; resolves once the broker has it (PUBACK for QoS 1). Rejects with GW_STREAM_UNAVAILABLE when not connected or closed. */
  publish (topic: string, payload: Buffer | string, options: IClientPublishOptions): Promise<unknown> {
    const producer = this.producer
    if (this.stopped !== null || producer === null) return Promise.reject(new GatewayErrors.STREAM_UNAVAILABLE('mqtt', 'the producer is closed'))
    if (!producer.connected) return Promise.reject(new GatewayErrors.STREAM_UNAVAILABLE('mqtt', 'the producer is not connected'))
    const sending = withTimeout(producer.publishAsync(topic, payload, options), this.options.publishTimeoutMs, `mqtt: no PUBACK for ${topic} within ${this.options.publishTimeoutMs} ms`)
    this.pendingEmits.add(sending)
    const forget = () => { this.pendingEmits.delete(sending) }
    sending.then(forget, forget)
    return sending
  }

  /**
   * Stops consuming (the in-flight message finishes and is acknowledged; what arrives after stays unacknowledged in
   * the session), lets pending emits settle, disconnects. Waits at most `closeTimeoutMs`.
   */
  stop (): Promise<void> {
    if (this.stopped !== null) return this.stopped
    this.stopping = true
    this.abort.abort()
    this.stopped = (async () => {
      const { log, closeTimeoutMs } = this.options
      const deadline = Date.now() + closeTimeoutMs
      const drained = (async () => {
        if (this.inFlight !== null) await this.inFlight
        await Promise.allSettled([...this.pendingEmits])
      })()
      if (!(await settlesBy(drained, deadline))) {
        log.warn({ timeoutMs: closeTimeoutMs }, 'mqtt: close gave up waiting; what was not acknowledged is delivered again')
      }
      const ends: Array<Promise<unknown>> = []
      if (this.consumer !== null) ends.push(endClient(this.consumer, deadline))
      if (this.producer !== null && this.ownProducer) ends.push(endClient(this.producer, deadline))
      await Promise.all(ends)
      this.subscribed = false
    })()
    return this.stopped
  }

  private clientOptions (overrides: IClientOptions): IClientOptions {
    const { options } = this
    return {
      connectTimeout: 10_000,
      ...options.clientOptions,
      protocolVersion: 5,
      reconnectPeriod: options.reconnectBackoffMs,
      keepalive: options.keepaliveS,
      ...overrides
    }
  }

  private openProducer (): MqttClient {
    const { log } = this.options
    const producer = this.options.connect(this.options.url, this.clientOptions({ clientId: `${this.options.clientId}-out`, clean: true }))
    producer.on('connect', () => {
      this.producerFailures = 0
      producer.options.reconnectPeriod = this.options.reconnectBackoffMs
      log.info({ clientId: producer.options.clientId }, 'mqtt: producer connected')
    })
    producer.on('error', (err) => { this.lost('producer', err) })
    producer.on('close', () => { this.backOff(producer, ++this.producerFailures) })
    return producer
  }

  private openConsumer (): MqttClient {
    const { log, clientId, sessionExpiryS, receiveMaximum } = this.options
    const consumer = this.options.connect(this.options.url, this.clientOptions({
      clientId,
      clean: false,
      resubscribe: false,
      properties: { ...this.options.clientOptions.properties, sessionExpiryInterval: sessionExpiryS, receiveMaximum },
      customHandleAcks: (topic, payload, packet, done) => {
        this.onMessage(consumer, topic, payload, packet, done)
      }
    }))
    consumer.on('connect', (connack) => {
      this.consumerFailures = 0
      this.identifiers = connack.properties?.subscriptionIdentifiersAvailable !== false
      consumer.options.reconnectPeriod = this.options.reconnectBackoffMs
      log.info({ clientId, sessionPresent: connack.sessionPresent }, 'mqtt: consumer connected')
      this.subscribe(consumer)
    })
    /* c8 ignore next 4: brokers that say so (EMQX, HiveMQ); mosquitto 2.0 just closes the connection */
    consumer.on('disconnect', (packet) => {
      // 142: another connection took this client id over; two instances with one id would take turns forever
      if (packet.reasonCode === 142) log.error({ clientId }, 'mqtt: another client connected with this client id; give every instance its own clientId')
    })
    consumer.on('error', (err) => { this.lost('consumer', err) })
    consumer.on('close', () => {
      this.subscribed = false
      this.backOff(consumer, ++this.consumerFailures)
    })
    return consumer
  }

  /**
   * Subscribes every filter through the shared group, each in a SUBSCRIBE of its own with a subscription identifier
   * (its index + 1): overlapping filters deliver a copy each, and the identifier says which filter's routes to run.
   * A refusal is retried after a backoff.
   */
  private subscribe (consumer: MqttClient): void {
    const { group, log } = this.options
    Promise.all(this.filters.map((filter, index) => consumer.subscribeAsync(`$share/${group}/${filter}`, {
      qos: 1,
      ...(this.identifiers ? { properties: { subscriptionIdentifier: index + 1 } } : {})
    }))).then(() => {
      this.subscribed = true
      log.info({ group, filters: this.filters }, 'mqtt: consumer subscribed')
    }).catch((err: unknown) => {
      if (this.stopping || !consumer.connected) return
      log.error({ err }, 'mqtt: subscribe failed; retrying')
      const timer = setTimeout(() => { if (!this.stopping && consumer.connected) this.subscribe(consumer) }, this.options.reconnectBackoffMaxMs)
      timer.unref()
    })
  }

  private lost (which: 'consumer' | 'producer', err: Error): void {
    if (this.stopping) return
    const failures = which === 'consumer' ? this.consumerFailures : this.producerFailures
    // once per outage at warn; the retries after it at debug
    if (failures <= 1) this.options.log.warn({ err: { message: errorText(err), code: (err as { code?: unknown }).code } }, `mqtt: ${which} connection failed; reconnecting`)
    else this.options.log.debug({ err: errorText(err), failures }, `mqtt: ${which} still cannot connect`)
  }

  /** MQTT.js reconnects after `reconnectPeriod`: make that an exponential backoff while the broker stays away. */
  private backOff (client: MqttClient, failures: number): void {
    client.options.reconnectPeriod = backoffDelay(this.options.reconnectBackoffMs, this.options.reconnectBackoffMaxMs, Math.max(0, failures - 1))
  }

  /** The filters a message came through, from its subscription identifiers (none: every route may run). */
  private via (ids: number | number[] | undefined): { via?: ReadonlySet<string> } {
    if (ids === undefined) return {}
    const filters = new Set<string>()
    for (const id of Array.isArray(ids) ? ids : [ids]) {
      const filter = this.filters[id - 1]
      if (filter !== undefined) filters.add(filter)
    }
    return filters.size === 0 ? {} : { via: filters }
  }

  private onMessage (consumer: MqttClient, topic: string, payload: Buffer, packet: IPublishPacket, done: (error: Error | number, code?: number) => void): void {
    // closing: leave it unacknowledged in the session (it comes again)
    if (this.stopping) return
    const { processor, log, keepaliveS } = this.options
    const { properties = {} } = packet
    const fields: MqttFields = { topic, wildcards: [], properties, qos: packet.qos, retain: packet.retain, dup: packet.dup }
    const delivery: Delivery<MqttFields, IPublishPacket> = {
      source: topic,
      payload: payload.length === 0 ? null : payload,
      fields,
      where: { topic, messageId: packet.messageId },
      ...this.via(properties.subscriptionIdentifier),
      raw: packet
    }
    // the PINGRESPs are read after this message: keep the connection alive meanwhile
    const stopBeat = keepAlive(Math.max(500, keepaliveS * 500), () => {
      if (consumer.connected) {
        consumer.sendPing()
        consumer.reschedulePing(true)
      }
    })
    this.inFlight = processor.process(delivery, this.abort.signal).then((outcome) => {
      stopBeat()
      // closing cut its retries short: no PUBACK, it stays in the session
      if (outcome !== 'abandoned') done(0)
    }, (err: unknown) => {
      stopBeat()
      if (this.stopping) return
      // the dead letter could not be written: drop the connection without a PUBACK; the session brings it back
      log.error({ err, topic }, 'mqtt: a message could not be handled nor dead-lettered; reconnecting to get it again')
      consumer.stream?.destroy()
    }).finally(() => { this.inFlight = null })
  }
}

function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new GatewayErrors.STREAM_UNAVAILABLE('mqtt', message)) }, ms)
    promise.then((value) => {
      clearTimeout(timer)
      resolve(value)
    }, (err: unknown) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** DISCONNECT (keeping the session) once what was sent is flushed; forced at `deadline`. */
async function endClient (client: MqttClient, deadline: number): Promise<void> {
  const ended = client.endAsync(false)
  if (!(await settlesBy(ended, Math.max(deadline, Date.now() + 200)))) await client.endAsync(true).catch(() => {})
}
