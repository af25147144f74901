import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { KafkaConfig, logCreator as LogCreator, Message } from 'kafkajs'
import { ensureRooms } from './rooms.js'
import { ensureReadiness } from './health.js'
import { decoratorOption, isFunction, parseOptions } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import { encodeData } from '../lib/rooms/event.js'
import { MessageProcessor, type KafkaHandler } from '../lib/kafka/processor.js'
import { isTopicName, parseBridgeRules, type BridgeRulesInput } from '../lib/kafka/template.js'
import { KafkaLifecycle } from '../lib/kafka/lifecycle.js'
import { loadPeer } from '../lib/peer.js'

export type { KafkaHandler, KafkaMessage, DeadLetter, FailureType } from '../lib/kafka/processor.js'
export type { BridgeRulesInput } from '../lib/kafka/template.js'

/** Broker addresses, or a function asked again on each (re)connect (so a moved or restarted broker is found). */
export type KafkaBrokers = string[] | (() => string[] | Promise<string[]>)

/** kafkajs client settings passed through (ssl, sasl, connectionTimeout, requestTimeout, retry, logLevel, ...). */
export type KafkaClientConfig = Omit<KafkaConfig, 'brokers' | 'clientId'>

export interface KafkaEmitOptions {
  key?: string | Buffer | null
  headers?: Record<string, string | Buffer>
  /** a fixed partition; default: by key (or round robin without a key) */
  partition?: number
}

export interface KafkaEmitResult {
  topic: string
  partition: number
  /** the offset of the written message */
  offset: string
}

export interface KafkaOnOptions<T> {
  /** a zod schema: the handler gets its parsed output; a value that fails it goes straight to the dead letters */
  schema?: z.ZodType<T>
}

/** `app.kafka` */
export interface KafkaApi {
  /**
   * Calls `handler` for every message of `topic` (or of every topic the RegExp matches when the consumer starts,
   * dead-letter topics excepted). Must be called before the app is ready (GW_KAFKA_TOO_LATE otherwise). A handler
   * that throws is retried with backoff, then the message is dead-lettered on `<topic><dlqSuffix>`.
   */
  on<T = unknown> (topic: string | RegExp, handler: KafkaHandler<T>, options?: KafkaOnOptions<T>): void
  /** Writes `value` as JSON to `topic`. Rejects with GW_KAFKA_UNAVAILABLE (503) while the producer is not connected. */
  emit (topic: string, value: unknown, options?: KafkaEmitOptions): Promise<KafkaEmitResult>
  /** Publishes each message of `topic` to the room `roomTemplate` makes of its JSON value (event name: the topic). */
  bridge (topic: string, roomTemplate: string): void
  /** True while the producer is connected and the consumer is live in its group. */
  isReady (): boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the kafka gateway's handlers, producer and bridge (under another name with the `decorator` option) */
    kafka: KafkaApi
  }
}

const PLUGIN = 'fastify-gateways/kafka'
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/

const KafkaOptionsSchema = z.strictObject({
  /** `host:port` list, or a function returning it (asked again on every reconnect) */
  brokers: z.union([
    z.array(z.string().regex(BROKER, { error: 'each broker must be host:port' })).min(1, { error: 'must list at least one broker' }),
    z.custom<() => string[] | Promise<string[]>>(isFunction)
  ], { error: 'must be a list of host:port or a function returning one' }),
  /** consumer group */
  groupId: z.string().min(1).max(255).default('fastify-gateways'),
  /** client id sent to the brokers */
  clientId: z.string().min(1).max(255).default('fastify-gateways'),
  /** topic to room rules: `['topic=user:{userId}']`, `[['topic', 'user:{userId}']]` or `{ topic: 'user:{userId}' }` */
  bridge: z.custom<BridgeRulesInput>((v) => v !== null && typeof v === 'object', {
    error: 'must be a list of topic=roomTemplate rules or an object of topic: roomTemplate'
  }).transform((v, ctx) => {
    try {
      return parseBridgeRules(v)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  }).default([]),
  /** retries of a failing handler before its message is dead-lettered */
  retries: z.number().int().min(0).max(100).default(3),
  /** wait before the first retry, doubled each retry (at most 30 s) */
  retryBackoffMs: z.number().int().min(0).max(600_000).default(200),
  /** longest a fetch waits for data at the broker */
  maxWaitTimeInMs: z.number().int().min(1).max(60_000).default(500),
  /** consumer session timeout */
  sessionTimeout: z.number().int().min(1000).max(3_600_000).default(30_000),
  /** consumer heartbeat interval (also during long handlers), below sessionTimeout */
  heartbeatInterval: z.number().int().min(10).max(3_600_000).default(3000),
  /** a group new to a topic starts at its first message (true) or at new messages (false) */
  fromBeginning: z.boolean().default(false),
  /** dead letters of `t` go to `t + dlqSuffix` */
  dlqSuffix: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9._-' }).default('.dlq'),
  /** longest close waits for the in-flight message, the last commit and pending emits */
  closeTimeoutMs: z.number().int().min(0).max(3_600_000).default(5000),
  /** kafkajs client settings passed through: ssl, sasl, timeouts, retry, logLevel, ... */
  kafkaConfig: z.custom<KafkaClientConfig>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), {
    error: 'must be an object of kafkajs client settings'
  }).refine((v) => !('brokers' in v) && !('clientId' in v), {
    error: 'must not set brokers or clientId (use the brokers and clientId options)'
  }).default({}),
  /** the decorator: `app.kafka` by default (another name avoids a clash with another Kafka plugin) */
  decorator: decoratorOption('kafka')
}).refine((o) => o.heartbeatInterval < o.sessionTimeout, {
  error: 'must be lower than sessionTimeout (about a third of it)', path: ['heartbeatInterval']
})

export type KafkaGatewayOptions = z.input<typeof KafkaOptionsSchema>

async function kafkaGatewayPlugin (app: FastifyInstance, raw: KafkaGatewayOptions) {
  const options = parseOptions(PLUGIN, KafkaOptionsSchema, raw)
  // loaded at register, not at import: importing the library must not cost kafkajs to apps that do not use Kafka
  const kafkajs = await loadPeer<Kafkajs>('kafkajs', 'kafka', () => import('kafkajs'))
  const rooms = await ensureRooms(app)
  const log = app.log.child({ gateway: 'kafka' })
  let lifecycle: KafkaLifecycle | null = null
  let frozen = false

  const processor = new MessageProcessor({
    retries: options.retries,
    retryBackoffMs: options.retryBackoffMs,
    dlqSuffix: options.dlqSuffix,
    publish: (room, event, data) => rooms.publish(room, event, data),
    deadLetter: async (letter) => {
      /* c8 ignore next */
      if (lifecycle === null) throw new Error('kafka is not started')
      await lifecycle.send(letter.topic, [{ key: letter.key, value: letter.value, headers: letter.headers }])
    },
    log,
    count: (outcome) => { rooms.counters.streamMessage('kafka', outcome) }
  })
  for (const rule of options.bridge) processor.bridge(rule.topic, rule.template)

  const kafka: KafkaApi = {
    on (topic, handler, onOptions = {}) {
      if (frozen) throw new GatewayErrors.KAFKA_TOO_LATE('on')
      if (!(topic instanceof RegExp) && !isTopicName(topic)) throw new GatewayErrors.KAFKA_INVALID_TOPIC(JSON.stringify(topic))
      if (typeof handler !== 'function') throw new TypeError('app.kafka.on: handler must be a function')
      const schema = onOptions.schema
      if (schema !== undefined && typeof schema?.safeParse !== 'function') throw new TypeError('app.kafka.on: schema must be a zod schema')
      processor.on(topic, handler as KafkaHandler<never>, schema)
    },
    bridge (topic, roomTemplate) {
      if (frozen) throw new GatewayErrors.KAFKA_TOO_LATE('bridge')
      if (!isTopicName(topic)) throw new GatewayErrors.KAFKA_INVALID_TOPIC(JSON.stringify(topic))
      // throws a TypeError naming the problem with the template
      processor.bridge(topic, roomTemplate)
    },
    async emit (topic, value, emitOptions = {}) {
      if (!isTopicName(topic)) throw new GatewayErrors.KAFKA_INVALID_TOPIC(JSON.stringify(topic))
      const message: Message = { value: encodeData(value) }
      if (emitOptions.key !== undefined) message.key = emitOptions.key
      if (emitOptions.headers !== undefined) message.headers = emitOptions.headers
      if (emitOptions.partition !== undefined) message.partition = emitOptions.partition
      if (lifecycle === null) throw new GatewayErrors.KAFKA_UNAVAILABLE('the producer starts when the app is ready')
      const written = await lifecycle.send(topic, [message])
      return { topic, partition: written[0].partition, offset: written[0].baseOffset ?? written[0].offset ?? '' }
    },
    isReady () {
      return lifecycle?.isReady() ?? false
    }
  }
  app.decorate(options.decorator, kafka)
  ensureReadiness(app).add('kafka', () => kafka.isReady())

  app.addHook('onReady', async function startKafka () {
    frozen = true
    const brokers = typeof options.brokers === 'function' ? options.brokers : [...options.brokers]
    const { kafkaConfig } = options
    const client = new kafkajs.Kafka({
      logCreator: pinoLogCreator(log, kafkajs.logLevel),
      ...kafkaConfig,
      clientId: options.clientId,
      brokers
    })
    lifecycle = new KafkaLifecycle({
      kafka: client,
      groupId: options.groupId,
      consumer: {
        sessionTimeout: options.sessionTimeout,
        heartbeatInterval: options.heartbeatInterval,
        maxWaitTimeInMs: options.maxWaitTimeInMs,
        // how long a rebalance waits for every member to rejoin (kafkajs's default, or the session if longer)
        rebalanceTimeout: Math.max(60_000, options.sessionTimeout)
      },
      producer: { createPartitioner: kafkajs.Partitioners.DefaultPartitioner },
      fromBeginning: options.fromBeginning,
      processor,
      log,
      closeTimeoutMs: options.closeTimeoutMs,
      brokers: kafkaConfig.socketFactory === undefined ? async () => typeof brokers === 'function' ? await brokers() : brokers : null,
      connectionTimeout: kafkaConfig.connectionTimeout
    })
    lifecycle.start()
  })

  app.addHook('onClose', async function stopKafka () {
    frozen = true
    await lifecycle?.stop()
  })
}

type Kafkajs = typeof import('kafkajs')

/** kafkajs's own logs, through the app's pino logger (objects first, the kafkajs namespace as a field). */
function pinoLogCreator (log: FastifyBaseLogger, levels: Kafkajs['logLevel']): LogCreator {
  return () => ({ namespace, level, log: entry }) => {
    const { message, timestamp: _t, logger: _l, ...fields } = entry
    const obj = { kafkajs: namespace, ...fields }
    if (level === levels.ERROR) log.error(obj, message)
    else if (level === levels.WARN) log.warn(obj, message)
    else if (level === levels.INFO) log.info(obj, message)
    else log.debug(obj, message)
  }
}

export const kafkaGateway = fp(kafkaGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default kafkaGateway
