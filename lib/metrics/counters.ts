/**
 * The counters the core keeps for operations: plain numbers in fixed-shape objects, so the hot paths pay one
 * increment per event or per delivery batch and nothing per member. One instance per room registry
 * (`app.rooms.counters`), shared by every gateway of the app; the metrics plugin reads them at scrape time and the
 * admin dashboard reads them for rates. Nothing here knows Prometheus.
 */
export const TRANSPORTS = ['ws', 'sse', 'rtc'] as const
export type Transport = typeof TRANSPORTS[number]

export const DISCONNECT_REASONS = ['client', 'slow_consumer', 'too_large', 'shutdown', 'rate_limited', 'unauthenticated', 'ping_timeout', 'error'] as const
export type DisconnectReason = typeof DISCONNECT_REASONS[number]

export const WEBHOOK_PROVIDERS = ['stripe', 'sms', 'sslcommerz', 'hooks'] as const
export type WebhookProvider = typeof WEBHOOK_PROVIDERS[number]
export const WEBHOOK_OUTCOMES = ['handled', 'duplicate', 'rejected', 'failed'] as const
export type WebhookOutcome = typeof WEBHOOK_OUTCOMES[number]

export const STREAM_BROKERS = ['kafka', 'mqtt', 'nats', 'redis-streams'] as const
export type StreamBroker = typeof STREAM_BROKERS[number]
export const STREAM_OUTCOMES = ['handled', 'retried', 'dead_lettered'] as const
export type StreamOutcome = typeof STREAM_OUTCOMES[number]

type Table<K extends string, V> = Record<K, V>

function table<K extends string, V> (keys: readonly K[], make: () => V): Table<K, V> {
  const out = {} as Table<K, V>
  for (const key of keys) out[key] = make()
  return out
}

export class GatewayCounters {
  /** open connections per transport (a gauge) */
  readonly connections: Table<Transport, number> = table(TRANSPORTS, () => 0)
  /** events published on this instance */
  eventsPublished = 0
  /** events handed to members, per transport */
  readonly deliveries: Table<Transport, number> = table(TRANSPORTS, () => 0)
  /** connections ended, per transport and reason */
  readonly disconnects: Table<Transport, Table<DisconnectReason, number>> = table(TRANSPORTS, () => table(DISCONNECT_REASONS, () => 0))
  readonly webhooks: Table<WebhookProvider, Table<WebhookOutcome, number>> = table(WEBHOOK_PROVIDERS, () => table(WEBHOOK_OUTCOMES, () => 0))
  readonly streamMessages: Table<StreamBroker, Table<StreamOutcome, number>> = table(STREAM_BROKERS, () => table(STREAM_OUTCOMES, () => 0))

  connectionOpened (transport: Transport): void {
    this.connections[transport]++
  }

  connectionClosed (transport: Transport, reason: DisconnectReason): void {
    this.connections[transport]--
    this.disconnects[transport][reason]++
  }

  delivered (transport: Transport, count: number): void {
    this.deliveries[transport] += count
  }

  webhook (provider: WebhookProvider, outcome: WebhookOutcome): void {
    this.webhooks[provider][outcome]++
  }

  streamMessage (broker: StreamBroker, outcome: StreamOutcome): void {
    this.streamMessages[broker][outcome]++
  }
}
