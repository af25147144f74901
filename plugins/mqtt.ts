import fp from 'fastify-plugin'
import { hostname } from 'node:os'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { IClientOptions, IClientPublishOptions, IPublishPacket, MqttClient } from 'mqtt'
import { intOption, parseOptions } from '../lib/options.js'
import { wireStreamGateway } from './shared/stream.js'
import { GatewayErrors } from '../lib/errors.js'
import { loadPeer } from '../lib/peer.js'
import { encodeData } from '../lib/rooms/event.js'
import { mqttTopicProblem, mqttTopics } from '../lib/streams/patterns.js'
import type { StreamApi } from '../lib/streams/api.js'
import { passThrough, streamOptions } from '../lib/streams/options.js'
import { MqttLifecycle, type MqttFields } from '../lib/mqtt/lifecycle.js'

export type { MqttFields } from '../lib/mqtt/lifecycle.js'
export type { StreamMessage, StreamHandler, FailureType } from '../lib/streams/processor.js'
export type { BridgeRulesInput } from '../lib/streams/template.js'

/** What an MQTT handler receives: the JSON value, the actual topic, the `+` values, properties, attempt, signal. */
export type MqttMessage<T = unknown> = import('../lib/streams/processor.js').StreamMessage<T, MqttFields>
export type MqttHandler<T = unknown> = (message: MqttMessage<T>) => unknown

export interface MqttEmitOptions {
  /** 1 (default): resolves on the broker's PUBACK; 0: once written to the socket */
  qos?: 0 | 1
  /** the broker keeps it as the topic's retained message */
  retain?: boolean
  /** MQTT 5 publish properties (userProperties, contentType, responseTopic, correlationData, messageExpiryInterval) */
  properties?: IClientPublishOptions['properties']
}

export interface MqttEmitResult {
  topic: string
  qos: 0 | 1
}

/** `app.mqtt` */
export type MqttApi = StreamApi<MqttFields, MqttEmitOptions, MqttEmitResult>

declare module 'fastify' {
  interface FastifyInstance {
    /** the mqtt gateway's handlers, emits and bridge (under another name with the `decorator` option) */
    mqtt: MqttApi
  }
}

const PLUGIN = 'fastify-gateways/mqtt'

const MqttOptionsSchema = z.strictObject({
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` URL of the broker; credentials may sit in it (never logged) */
  url: z.string().regex(/^(mqtts?|wss?):\/\/\S+$/, { error: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' }),
  /** shared-subscription group: instances subscribe `$share/<group>/<filter>`, each message is handled by one */
  group: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.-' }).default('fastify-gateways'),
  /** the consuming connection's client id, stable across restarts and unique per instance (default `<group>-<hostname>`) */
  clientId: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 characters of A-Za-z0-9_.:-' }).optional(),
  /** how long the broker keeps the session (what was not acknowledged, what arrives meanwhile) after a disconnect */
  sessionExpiryS: intOption(0, 4_294_967_295, 600),
  /** most unacknowledged messages the broker sends at once */
  receiveMaximum: intOption(1, 65_535, 100),
  /** keepalive in seconds */
  keepaliveS: intOption(1, 65_535, 30),
  /** dead letters of topic `t` go to `<dlqPrefix>t` */
  dlqPrefix: z.string().regex(/^[^\s+#/][^\s+#]*\/$/, { error: 'must be a topic prefix ending with /, without wildcards' }).default('dlq/'),
  /** an emit or dead letter without the broker's PUBACK after this long rejects */
  publishTimeoutMs: intOption(100, 600_000, 10_000),
  /** MQTT.js settings passed through: username, password, TLS (ca, cert, key, rejectUnauthorized), connectTimeout... */
  clientOptions: passThrough<IClientOptions>('MQTT.js client settings').refine(
    (v) => !['clientId', 'clean', 'protocolVersion', 'customHandleAcks'].some((key) => key in v),
    { error: 'must not set clientId, clean, protocolVersion or customHandleAcks (the gateway sets them)' }
  ).default({}),
  /** the host's own MQTT.js client, for emits and dead letters (left open on close); the gateway still consumes on its own connection */
  client: z.custom<MqttClient>((v) => v !== null && typeof v === 'object' && typeof (v as MqttClient).publishAsync === 'function', {
    error: 'must be an MQTT.js client'
  }).optional(),
  ...streamOptions(mqttTopics(), 'mqtt')
})

export type MqttGatewayOptions = z.input<typeof MqttOptionsSchema>

async function mqttGatewayPlugin (app: FastifyInstance, raw: MqttGatewayOptions) {
  const options = parseOptions(PLUGIN, MqttOptionsSchema, raw)
  // loaded at register, not at import: importing the library must not cost MQTT.js to apps that do not use MQTT
  const mqtt = await loadPeer<typeof import('mqtt')>('mqtt', 'mqtt', () => import('mqtt'))
  const syntax = mqttTopics(options.dlqPrefix)
  await wireStreamGateway<MqttFields, MqttEmitOptions, MqttEmitResult, IPublishPacket, MqttLifecycle>(app, {
    broker: 'mqtt',
    targetNoun: 'mqtt topic',
    options,
    syntax,
    mode: 'inline',
    targetProblem: mqttTopicProblem,
    notStarted: 'the producer starts when the app is ready',
    deadLetter: async (lifecycle, delivery, failure, topic) => {
      const { properties = {} } = delivery.raw
      await lifecycle.publish(topic, delivery.raw.payload as Buffer, {
        qos: 1,
        properties: {
          ...(properties.contentType === undefined ? {} : { contentType: properties.contentType }),
          ...(properties.correlationData === undefined ? {} : { correlationData: properties.correlationData }),
          userProperties: {
            ...properties.userProperties,
            error: printable(failure.error),
            'error-type': failure.type,
            attempts: String(failure.attempts),
            'original-topic': delivery.source
          }
        }
      })
    },
    emit: async (topic, value, emitOptions, started) => {
      const qos = emitOptions.qos ?? 1
      if (qos !== 0 && qos !== 1) throw new GatewayErrors.STREAM_INVALID('mqtt qos', String(qos), 'must be 0 or 1')
      const payload = encodeData(value)
      await started().publish(topic, payload, { qos, retain: emitOptions.retain === true, ...(emitOptions.properties === undefined ? {} : { properties: emitOptions.properties }) })
      return { topic, qos }
    },
    start: (processor, log) => {
      const lifecycle = new MqttLifecycle({
        connect: mqtt.connect,
        url: options.url,
        clientOptions: options.clientOptions,
        ...(options.client === undefined ? {} : { producer: options.client }),
        clientId: options.clientId ?? `${options.group}-${hostname()}`.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 128),
        group: options.group,
        sessionExpiryS: options.sessionExpiryS,
        receiveMaximum: options.receiveMaximum,
        keepaliveS: options.keepaliveS,
        reconnectBackoffMs: options.reconnectBackoffMs,
        reconnectBackoffMaxMs: options.reconnectBackoffMaxMs,
        processor,
        log,
        closeTimeoutMs: options.closeTimeoutMs,
        publishTimeoutMs: options.publishTimeoutMs
      })
      lifecycle.start()
      return lifecycle
    }
  })
}

/** MQTT strings may not carry U+0000 (and control characters help nobody in a property). */
function printable (text: string): string {
  return text.replace(/\p{Cc}/gu, '?')
}

export const mqttGateway = fp(mqttGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default mqttGateway
