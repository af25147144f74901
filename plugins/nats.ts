import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { ConnectionOptions, JsMsg, NatsConnection, StreamConfig } from 'nats'
import { intOption, parseOptions } from '../lib/options.js'
import { wireStreamGateway } from './shared/stream.js'
import { loadPeer } from '../lib/peer.js'
import { encodeData } from '../lib/rooms/event.js'
import { natsSubjectProblem, natsSubjects } from '../lib/streams/patterns.js'
import type { StreamMessage } from '../lib/streams/processor.js'
import type { StreamApi } from '../lib/streams/api.js'
import { passThrough, streamOptions } from '../lib/streams/options.js'
import { NatsLifecycle, type NatsFields } from '../lib/nats/lifecycle.js'

export type { NatsFields } from '../lib/nats/lifecycle.js'
export type { StreamMessage, StreamHandler, FailureType } from '../lib/streams/processor.js'
export type { BridgeRulesInput } from '../lib/streams/template.js'

/** What a NATS handler receives: the JSON value, the actual subject, the `*` values, headers, sequence, attempt, signal. */
export type NatsMessage<T = unknown> = StreamMessage<T, NatsFields>
export type NatsHandler<T = unknown> = (message: NatsMessage<T>) => unknown

export interface NatsEmitOptions {
  headers?: Record<string, string | string[]>
  /** JetStream's deduplication id (`Nats-Msg-Id`): a second publish with it within the stream's window is dropped */
  msgID?: string
}

export interface NatsEmitResult {
  stream: string
  seq: number
  /** true when JetStream dropped it as a duplicate of `msgID` */
  duplicate: boolean
}

/** `app.nats` */
export type NatsApi = StreamApi<NatsFields, NatsEmitOptions, NatsEmitResult>

declare module 'fastify' {
  interface FastifyInstance {
    /** the nats gateway's handlers, emits and bridge (under another name with the `decorator` option) */
    nats: NatsApi
  }
}

const PLUGIN = 'fastify-gateways/nats'
const NAME = /^[A-Za-z0-9_-]{1,64}$/

const NatsOptionsSchema = z.strictObject({
  /** `nats://host:port` servers (a string or a list) */
  servers: z.union([z.string(), z.array(z.string()).min(1, { error: 'must list at least one server' })])
    .transform((v) => typeof v === 'string' ? [v] : v)
    .pipe(z.array(z.string().regex(/^(nats|tls|wss?):\/\/\S+$/, { error: 'each server must be a nats://host:port URL' }))).optional(),
  /** the host's own nats.js connection (left open on close) instead of `servers` */
  connection: z.custom<NatsConnection>((v) => v !== null && typeof v === 'object' && typeof (v as NatsConnection).jetstream === 'function', {
    error: 'must be a nats.js connection'
  }).optional(),
  /** the JetStream stream that holds the bridged subjects (created with them when missing, else extended) */
  stream: z.string().regex(NAME, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).default('GATEWAYS'),
  /** the stream of the dead letters (`dlq.<subject>`); default `<stream>_DLQ` */
  dlqStream: z.string().regex(NAME, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).optional(),
  /** the durable consumer every instance shares */
  durable: z.string().regex(NAME, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).default('fastify-gateways'),
  /** a new consumer starts at the stream's first message (true) or at new messages (false) */
  fromBeginning: z.boolean().default(false),
  /** a message not acknowledged this long is delivered again (a running handler keeps extending it) */
  ackWaitMs: intOption(100, 3_600_000, 30_000),
  /** most messages pulled ahead per instance */
  maxAckPending: intOption(1, 100_000, 64),
  /** dead letters of subject `s` go to `<dlqPrefix>s` */
  dlqPrefix: z.string().regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*\.$/, { error: 'must be subject tokens ending with a dot' }).default('dlq.'),
  /** settings of a stream this creates: max_age, max_bytes, num_replicas, storage... */
  streamConfig: passThrough<Partial<StreamConfig>>('JetStream stream settings').default({}),
  /** nats.js settings passed through: user, pass, token, tls, authenticator, name... */
  connectionOptions: passThrough<ConnectionOptions>('nats.js connection settings').refine((v) => !('servers' in v), {
    error: 'must not set servers (use the servers option)'
  }).default({}),
  ...streamOptions(natsSubjects(), 'nats')
}).refine((o) => o.servers !== undefined || o.connection !== undefined, { error: 'give servers or a connection', path: ['servers'] })

export type NatsGatewayOptions = z.input<typeof NatsOptionsSchema>

async function natsGatewayPlugin (app: FastifyInstance, raw: NatsGatewayOptions) {
  const options = parseOptions(PLUGIN, NatsOptionsSchema, raw)
  // loaded at register, not at import: importing the library must not cost nats.js to apps that do not use NATS
  const nats = await loadPeer<typeof import('nats')>('nats', 'nats', () => import('nats'))
  await wireStreamGateway<NatsFields, NatsEmitOptions, NatsEmitResult, JsMsg, NatsLifecycle>(app, {
    broker: 'nats',
    targetNoun: 'nats subject',
    options,
    syntax: natsSubjects(options.dlqPrefix),
    mode: 'redeliver',
    targetProblem: (subject) => natsSubjectProblem(subject, false),
    notStarted: 'the connection opens when the app is ready',
    deadLetter: async (lifecycle, delivery, failure, subject) => { await lifecycle.deadLetter(delivery.raw, failure, subject) },
    emit: async (subject, value, emitOptions, started) => {
      const payload = Buffer.from(encodeData(value))
      const lifecycle = started()
      let headers
      if (emitOptions.headers !== undefined) {
        headers = lifecycle.headers()
        for (const [name, value] of Object.entries(emitOptions.headers)) {
          for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one)
        }
      }
      const ack = await lifecycle.publish(subject, payload, headers, emitOptions.msgID)
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }
    },
    start: (processor, log) => {
      const lifecycle = new NatsLifecycle({
        nats,
        servers: options.servers ?? [],
        connectionOptions: options.connectionOptions,
        ...(options.connection === undefined ? {} : { connection: options.connection }),
        stream: options.stream,
        dlqStream: options.dlqStream ?? `${options.stream}_DLQ`,
        durable: options.durable,
        streamConfig: options.streamConfig,
        fromBeginning: options.fromBeginning,
        ackWaitMs: options.ackWaitMs,
        maxAckPending: options.maxAckPending,
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

export const natsGateway = fp(natsGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default natsGateway
