/**
 * The counters the core keeps for operations: plain numbers in fixed-shape objects, so the hot paths pay one
 * increment per event or per delivery batch and nothing per member. One instance per room registry
 * (`app.rooms.counters`), shared by every gateway of the app; the metrics plugin reads them at scrape time and the
 * admin dashboard reads them for rates. Nothing here knows Prometheus (docs/operations.md lists what each means).
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

/**
 * Per transport: 'ws', 'sse' and 'rtc' always, plus any other transport name a host's own members use (created the
 * first time it is counted).
 */
export type PerTransport<V> = Table<Transport, V> & Record<string, V>

/** A copy of every counter at one moment (JSON-safe): what `GatewayCounters.snapshot()` returns. */
export interface CountersSnapshot {
  /** open connections per transport */
  connections: Record<string, number>
  /** events published on this instance */
  eventsPublished: number
  /** events handed to members, per transport */
  deliveries: Record<string, number>
  /** connections ended, per transport and reason */
  disconnects: Record<string, Record<DisconnectReason, number>>
  /** webhook deliveries per provider and outcome */
  webhooks: Record<WebhookProvider, Record<WebhookOutcome, number>>
  /** broker messages per broker and outcome */
  streamMessages: Record<StreamBroker, Record<StreamOutcome, number>>
}

export class GatewayCounters {
  /** open connections per transport (a gauge) */
  readonly connections: PerTransport<number> = table(TRANSPORTS, () => 0)
  /** events published on this instance */
  eventsPublished = 0
  /** events handed to members, per transport */
  readonly deliveries: PerTransport<number> = table(TRANSPORTS, () => 0)
  /** connections ended, per transport and reason */
  readonly disconnects: PerTransport<Table<DisconnectReason, number>> = table(TRANSPORTS, reasons)
  readonly webhooks: Table<WebhookProvider, Table<WebhookOutcome, number>> = table(WEBHOOK_PROVIDERS, () => table(WEBHOOK_OUTCOMES, () => 0))
  readonly streamMessages: Table<StreamBroker, Table<StreamOutcome, number>> = table(STREAM_BROKERS, () => table(STREAM_OUTCOMES, () => 0))
  private shuttingDown = false

  connectionOpened (transport: string): void {
    this.connections[transport] = (this.connections[transport] ?? 0) + 1
  }

  /** A connection ended; once `markShutdown()` was called, an end the client seemed to cause counts as `shutdown`. */
  connectionClosed (transport: string, reason: DisconnectReason): void {
    this.connections[transport] = (this.connections[transport] ?? 0) - 1
    const why = this.shuttingDown && reason === 'client' ? 'shutdown' : reason
    this.disconnects[transport] ??= reasons()
    this.disconnects[transport][why]++
  }

  /** `count` members of `transport` were handed one event (one call per event and transport, not per member). */
  delivered (transport: string, count: number): void {
    this.deliveries[transport] = (this.deliveries[transport] ?? 0) + count
  }

  webhook (provider: WebhookProvider, outcome: WebhookOutcome): void {
    this.webhooks[provider][outcome]++
  }

  streamMessage (broker: StreamBroker, outcome: StreamOutcome): void {
    this.streamMessages[broker][outcome]++
  }

  /**
   * The server is shutting down: connections that end from now on were ended by the shutdown, even when the socket
   * layer closed them without telling the gateway (the rooms plugin calls this in `preClose`).
   */
  markShutdown (): void {
    this.shuttingDown = true
  }

  /** A copy of every counter, for a host that reads them without Prometheus (logs, its own endpoint, tests). */
  snapshot (): CountersSnapshot {
    return {
      connections: { ...this.connections },
      eventsPublished: this.eventsPublished,
      deliveries: { ...this.deliveries },
      disconnects: copy2(this.disconnects),
      webhooks: copy2(this.webhooks),
      streamMessages: copy2(this.streamMessages)
    }
  }
}

function reasons (): Table<DisconnectReason, number> {
  return table(DISCONNECT_REASONS, () => 0)
}

function copy2<K extends string, L extends string> (source: Table<K, Table<L, number>>): Table<K, Table<L, number>> {
  const out = {} as Table<K, Table<L, number>>
  for (const key of Object.keys(source) as K[]) out[key] = { ...source[key] }
  return out
}
