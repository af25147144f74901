import type { FastifyPluginAsync } from 'fastify'
import { stripeGateway as stripePlugin } from './plugins/stripe.js'
import { smsGateway as smsPlugin } from './plugins/sms.js'
import { kafkaGateway as kafkaPlugin } from './plugins/kafka.js'
import { mqttGateway as mqttPlugin } from './plugins/mqtt.js'
import { natsGateway as natsPlugin } from './plugins/nats.js'
import { redisStreamsGateway as redisStreamsPlugin } from './plugins/redis-streams.js'

// The root entry: the shared room registry, one plugin per gateway, the auth helpers and the error codes. It loads
// no provider SDK or broker client (stripe, twilio, kafkajs, ioredis...): those are optional peer dependencies that
// each gateway loads when it is registered. Each gateway is also its own subpath (`fastify-gateways/ws`, ...), which
// loads only that gateway and, for the SDK gateways, carries their full types (docs/configuration.md, "Packages").

export { rooms, ensureRooms, type RoomsOptions } from './plugins/rooms.js'
export { wsGateway, type WsGatewayOptions } from './plugins/ws.js'
export { sseGateway, type SseOptions } from './plugins/sse.js'
export { rtcSignalGateway, type RtcSignalGatewayOptions } from './plugins/rtc-signal.js'
export { externalGateway, type ExternalOptions, type ExternalHooks, type ExternalHookHandler, type ExternalHookContext } from './plugins/external.js'
export { sslcommerzGateway, type SslcommerzGatewayOptions, type SslcommerzClient, type SslcommerzHandlers, type SslcommerzHandlerContext, type SslcommerzNotification, type ValidationAnswer, type SessionInput, type RefundInput, type LoadOrder } from './plugins/sslcommerz.js'
export { demoRoutes, DEFAULT_CSP, type DemoRoutesOptions } from './routes/demo.js'

/**
 * A gateway whose SDK is an optional peer dependency, as the root entry types it: registrable, its options checked
 * when it is registered (GW_INVALID_OPTIONS naming the option; GW_MISSING_PEER naming the package to install when the
 * SDK is absent). Its typed options, handlers and decorator come with its subpath, which a host imports only with the
 * SDK installed: `import { stripeGateway } from 'fastify-gateways/stripe'`. So a host without the SDK compiles.
 */
export type OptionalPeerGateway = FastifyPluginAsync<Record<string, unknown>>

/** The Stripe gateway (needs `stripe`); typed in full by `fastify-gateways/stripe`. */
export const stripeGateway = stripePlugin as unknown as OptionalPeerGateway
/** The SMS gateway (needs `twilio`); typed in full by `fastify-gateways/sms`. */
export const smsGateway = smsPlugin as unknown as OptionalPeerGateway
/** The Kafka gateway (needs `kafkajs`); typed in full by `fastify-gateways/kafka`. */
export const kafkaGateway = kafkaPlugin as unknown as OptionalPeerGateway
/** The MQTT gateway (needs `mqtt`); typed in full by `fastify-gateways/mqtt`. */
export const mqttGateway = mqttPlugin as unknown as OptionalPeerGateway
/** The NATS JetStream gateway (needs `nats`); typed in full by `fastify-gateways/nats`. */
export const natsGateway = natsPlugin as unknown as OptionalPeerGateway
/** The Redis Streams gateway (needs `ioredis`); typed in full by `fastify-gateways/redis-streams`. */
export const redisStreamsGateway = redisStreamsPlugin as unknown as OptionalPeerGateway

export { RoomRegistry, type RoomRegistryOptions } from './lib/rooms/registry.js'
export { MemoryBus } from './lib/rooms/memory-bus.js'
export type { Bus } from './lib/rooms/bus.js'
export type {
  RoomEvent, Encoder, Member, PublishInput, PublishOptions, PublishResult, HistoryResult, Presence, RoomSummary, MaybePromise
} from './lib/rooms/types.js'
export { isRoomName, ROOM_NAME_RULE } from './lib/rooms/names.js'
export { isEventName } from './lib/rooms/event.js'

export { createJwtAuthenticator, AuthError, MIN_JWT_SECRET_BYTES, type JwtAuthenticatorOptions } from './lib/auth/jwt.js'
export { createRoomPolicy, type RoomPolicy, type RoomPolicyOptions, type AuthorizeRoom } from './lib/auth/policy.js'
export type { GatewayUser } from './lib/auth/user.js'
export type { Authenticate } from './plugins/shared/options.js'

// operations (docs/operations.md); the metrics plugin is its own subpath, fastify-gateways/metrics (prom-client types)
export { health, ensureReadiness, Readiness, type HealthOptions, type ReadinessCheck, type ReadinessResult } from './plugins/health.js'
export { admin, type AdminOptions, type AdminVerify, type AdminSession, type AdminOverview, type AdminInstance, type AdminRooms, type AdminRoom, type AdminPublishResult } from './plugins/admin.js'
export { GatewayCounters, type CountersSnapshot, type Transport, type DisconnectReason, type WebhookProvider, type WebhookOutcome, type StreamBroker, type StreamOutcome } from './lib/metrics/counters.js'
export { GatewayErrors } from './lib/errors.js'
export { loggerOptions, redactUrl } from './lib/log.js'
