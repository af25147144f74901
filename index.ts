// The library: one plugin per gateway plus the shared room registry. Each gateway is also its own subpath
// (`fastify-gateways/ws`, ...) so a host app loads only what it registers.
export { rooms, ensureRooms, type RoomsOptions } from './plugins/rooms.js'
export { wsGateway, type WsGatewayOptions } from './plugins/ws.js'
export { sseGateway, type SseOptions } from './plugins/sse.js'
export { rtcSignalGateway, type RtcSignalGatewayOptions } from './plugins/rtc-signal.js'
export { externalGateway, type ExternalOptions, type ExternalHooks, type ExternalHookHandler, type ExternalHookContext } from './plugins/external.js'
export { stripeGateway, publishStripeEvent, stripeUserId, type StripeGatewayOptions, type StripeHandlerContext, type StripeHandlers, type StripeEventOf, type StripeEventType } from './plugins/stripe.js'
export { smsGateway, SmsSendError, type SmsGatewayOptions, type SmsApi, type SmsHandlers, type SmsHandlerContext, type SmsReply, type SmsMessage, type SentSms, type SmsClient, type HttpClientOption, type InboundSms, type SmsStatus, type MessageStatus, type TwilioParams } from './plugins/sms.js'
export { kafkaGateway, type KafkaGatewayOptions, type KafkaApi, type KafkaHandler, type KafkaMessage, type KafkaEmitOptions, type KafkaEmitResult, type KafkaOnOptions, type KafkaBrokers, type KafkaClientConfig } from './plugins/kafka.js'

export { demoRoutes, DEFAULT_CSP, type DemoRoutesOptions } from './routes/demo.js'

// operations (docs/operations.md); the metrics plugin is its own subpath, fastify-gateways/metrics (prom-client types)
export { health, ensureReadiness, Readiness, type HealthOptions, type ReadinessCheck, type ReadinessResult } from './plugins/health.js'
export { admin, type AdminOptions, type AdminVerify, type AdminSession, type AdminOverview, type AdminInstance, type AdminRooms, type AdminRoom, type AdminPublishResult } from './plugins/admin.js'
export { GatewayCounters, type CountersSnapshot, type Transport, type DisconnectReason, type WebhookProvider, type WebhookOutcome, type StreamBroker, type StreamOutcome } from './lib/metrics/counters.js'

export * from './lib/rooms/index.js'
export { RedisBus, RedisDedupeStore, type RedisBusOptions, type RedisDedupeStoreOptions, type BusLogger } from './lib/redis/index.js'
export * from './lib/auth/index.js'
export { GatewayErrors } from './lib/errors.js'
export { loggerOptions, redactUrl } from './lib/log.js'
