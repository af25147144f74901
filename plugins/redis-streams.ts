import fp from 'fastify-plugin'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { intOption, parseOptions } from '../lib/options.js'
import { wireStreamGateway } from './shared/stream.js'
import { GatewayErrors } from '../lib/errors.js'
import { loadPeer } from '../lib/peer.js'
import { createRedisClient, type IORedis } from '../lib/redis/client.js'
import { encodeData } from '../lib/rooms/event.js'
import { redisStreamKeys } from '../lib/streams/patterns.js'
import type { StreamMessage } from '../lib/streams/processor.js'
import type { StreamApi } from '../lib/streams/api.js'
import { streamOptions } from '../lib/streams/options.js'
import { RedisStreamsLifecycle, type RawEntry, type RedisStreamFields } from '../lib/redis-streams/lifecycle.js'

export type { RedisStreamFields } from '../lib/redis-streams/lifecycle.js'
export type { StreamMessage, StreamHandler, FailureType } from '../lib/streams/processor.js'
export type { BridgeRulesInput } from '../lib/streams/template.js'

/** What a Redis Streams handler receives: the JSON of the entry's `data` field, the stream key, the entry id and other fields, attempt, signal. */
export type RedisStreamMessage<T = unknown> = StreamMessage<T, RedisStreamFields>
export type RedisStreamHandler<T = unknown> = (message: RedisStreamMessage<T>) => unknown

export interface RedisStreamsEmitOptions {
  /** trim the stream to about this many entries (`MAXLEN ~`) */
  maxLen?: number
  /** more fields of the entry besides `data` */
  fields?: Record<string, string>
}

export interface RedisStreamsEmitResult {
  stream: string
  /** the new entry's id */
  id: string
}

/** `app.redisStreams` */
export type RedisStreamsApi = StreamApi<RedisStreamFields, RedisStreamsEmitOptions, RedisStreamsEmitResult>

declare module 'fastify' {
  interface FastifyInstance {
    /** the redis-streams gateway's handlers, emits and bridge (under another name with the `decorator` option) */
    redisStreams: RedisStreamsApi
  }
}

const PLUGIN = 'fastify-gateways/redis-streams'

const RedisStreamsOptionsSchema = z.strictObject({
  /** `redis://` or `rediss://` URL of the Redis that holds the streams */
  url: z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL' }).optional(),
  /** the host's own ioredis client (left open on close) instead of `url`; the blocking reads use a duplicate of it */
  redis: z.custom<Redis>((v) => v !== null && typeof v === 'object' && typeof (v as Redis).duplicate === 'function' && typeof (v as Redis).xadd === 'function', {
    error: 'must be an ioredis client'
  }).optional(),
  /** the consumer group every instance shares (created at the stream's end when missing) */
  group: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:-' }).default('fastify-gateways'),
  /** this instance's consumer name; a stable one takes its own pending entries back at once after a restart */
  consumer: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 characters of A-Za-z0-9_.:-' }).optional(),
  /** an entry pending this long with a consumer that stopped is claimed by another instance */
  claimMs: intOption(100, 24 * 3600 * 1000, 30_000),
  /** how long one read waits for new entries */
  blockMs: intOption(10, 60_000, 1000),
  /** entries per read */
  count: intOption(1, 10_000, 10),
  /** a group created here starts at the stream's first entry (true) or at its end (false) */
  fromBeginning: z.boolean().default(false),
  /** dead letters of stream `k` go to `k<dlqSuffix>` */
  dlqSuffix: z.string().regex(/^[A-Za-z0-9_.:{}-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:{}-' }).default('.dlq'),
  ...streamOptions(redisStreamKeys(), 'redisStreams')
}).refine((o) => o.url !== undefined || o.redis !== undefined, { error: 'give a url or a redis client', path: ['url'] })

export type RedisStreamsGatewayOptions = z.input<typeof RedisStreamsOptionsSchema>

async function redisStreamsGatewayPlugin (app: FastifyInstance, raw: RedisStreamsGatewayOptions) {
  const options = parseOptions(PLUGIN, RedisStreamsOptionsSchema, raw)
  // ioredis is loaded at register, not at import; clients come from the shared factory
  const ioredis = await loadPeer<IORedis>('ioredis', 'redis-streams', async () => await import('ioredis'))
  const syntax = redisStreamKeys(options.dlqSuffix)
  await wireStreamGateway<RedisStreamFields, RedisStreamsEmitOptions, RedisStreamsEmitResult, RawEntry, RedisStreamsLifecycle>(app, {
    broker: 'redis-streams',
    targetNoun: 'redis stream key',
    options,
    syntax,
    mode: 'redeliver',
    targetProblem: (key) => syntax.problem(key),
    notStarted: 'the connection opens when the app is ready',
    deadLetter: async (lifecycle, delivery, failure, stream) => { await lifecycle.deadLetter(delivery.raw, failure, stream) },
    emit: async (stream, value, emitOptions, started) => {
      const { maxLen, fields = {} } = emitOptions
      if (maxLen !== undefined && (!Number.isInteger(maxLen) || maxLen < 1)) throw new GatewayErrors.STREAM_INVALID('maxLen', String(maxLen), 'must be a whole number from 1')
      if ('data' in fields) throw new GatewayErrors.STREAM_INVALID('field', '"data"', 'is the value itself')
      const data = encodeData(value)
      return { stream, id: await started().add(stream, data, fields, maxLen) }
    },
    start: (processor, log) => {
      const tuning = { commandTimeoutMs: options.blockMs + 2000, maxBackoffMs: options.reconnectBackoffMaxMs }
      const writer = options.redis ?? createRedisClient(ioredis, options.url as string, { ...tuning, connectionName: 'gw-streams' })
      const reader = options.redis?.duplicate({ commandTimeout: tuning.commandTimeoutMs, enableOfflineQueue: false, maxRetriesPerRequest: 0 }) ??
        createRedisClient(ioredis, options.url as string, { ...tuning, connectionName: 'gw-streams-read' })
      let down = false
      for (const client of [writer, reader]) {
        client.on('error', (err: Error) => {
          if (!down) log.warn({ err: { message: err.message } }, 'redis-streams: connection failed; reconnecting')
          down = true
        })
        client.on('ready', () => { down = false })
      }
      const lifecycle = new RedisStreamsLifecycle({
        reader,
        writer,
        ownWriter: options.redis === undefined,
        group: options.group,
        consumer: options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 128),
        claimMs: options.claimMs,
        blockMs: options.blockMs,
        count: options.count,
        fromBeginning: options.fromBeginning,
        reconnectBackoffMs: options.reconnectBackoffMs,
        reconnectBackoffMaxMs: options.reconnectBackoffMaxMs,
        processor,
        log,
        closeTimeoutMs: options.closeTimeoutMs
      })
      lifecycle.start()
      return lifecycle
    }
  })
}

export const redisStreamsGateway = fp(redisStreamsGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default redisStreamsGateway
