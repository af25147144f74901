import type * as PromClient from 'prom-client'
import {
  DISCONNECT_REASONS, STREAM_BROKERS, STREAM_OUTCOMES, WEBHOOK_OUTCOMES, WEBHOOK_PROVIDERS, type GatewayCounters
} from './counters.js'

/** The prom-client module (loaded lazily by the metrics plugin: it is an optional peer dependency). */
export type PromClientModule = typeof PromClient
export type PromRegistry = PromClient.Registry

/** What the gateway families are read from at scrape time (a RoomRegistry fits). */
export interface MetricsSource {
  readonly counters: GatewayCounters
  /** rooms with members on this instance */
  readonly localRoomCount: number
  /** true while the bus takes publishes */
  isReady (): boolean
  readonly instanceId: string
  readonly bus: { readonly name: string }
}

/** The families docs/operations.md lists; `prefix` comes first in each name. */
export function familyNames (prefix: string) {
  return {
    connections: `${prefix}gateways_connections`,
    rooms: `${prefix}gateways_rooms`,
    eventsPublished: `${prefix}gateways_events_published_total`,
    deliveries: `${prefix}gateways_deliveries_total`,
    disconnects: `${prefix}gateways_disconnects_total`,
    webhooks: `${prefix}gateways_webhooks_total`,
    streamMessages: `${prefix}gateways_stream_messages_total`,
    busUp: `${prefix}gateways_bus_up`,
    instance: `${prefix}gateways_instance_info`,
    http: `${prefix}http_request_duration_seconds`
  }
}

/**
 * Registers the gateway families on `registry`. Nothing is counted here: each family's `collect` copies the
 * plain counters of `source` when Prometheus scrapes, so the hot paths never see prom-client. Counters are
 * rebuilt from the totals on each scrape (reset, then one `inc` per series). Returns the registered names.
 */
export function registerGatewayMetrics (prom: PromClientModule, registry: PromRegistry, source: MetricsSource, prefix: string): string[] {
  const names = familyNames(prefix)
  const { counters } = source
  const registers = [registry]

  new prom.Gauge({
    name: names.connections,
    help: 'Open connections on this instance, per transport (ws, sse, rtc)',
    labelNames: ['transport'],
    registers,
    collect () {
      for (const [transport, value] of Object.entries(counters.connections)) this.set({ transport }, value)
    }
  })
  new prom.Gauge({
    name: names.rooms,
    help: 'Rooms with at least one member on this instance',
    registers,
    collect () { this.set(source.localRoomCount) }
  })
  new prom.Counter({
    name: names.eventsPublished,
    help: 'Events published on this instance (every gateway and app.rooms.publish)',
    registers,
    collect () {
      this.reset()
      this.inc(counters.eventsPublished)
    }
  })
  new prom.Counter({
    name: names.deliveries,
    help: 'Events handed to members on this instance, per transport',
    labelNames: ['transport'],
    registers,
    collect () {
      this.reset()
      for (const [transport, value] of Object.entries(counters.deliveries)) this.inc({ transport }, value)
    }
  })
  new prom.Counter({
    name: names.disconnects,
    help: 'Connections ended on this instance, per transport and reason',
    labelNames: ['transport', 'reason'],
    registers,
    collect () {
      this.reset()
      for (const [transport, byReason] of Object.entries(counters.disconnects)) {
        for (const reason of DISCONNECT_REASONS) this.inc({ transport, reason }, byReason[reason])
      }
    }
  })
  new prom.Counter({
    name: names.webhooks,
    help: 'Inbound webhook deliveries, per provider and outcome (handled, duplicate, rejected, failed)',
    labelNames: ['provider', 'outcome'],
    registers,
    collect () {
      this.reset()
      for (const provider of WEBHOOK_PROVIDERS) {
        for (const outcome of WEBHOOK_OUTCOMES) this.inc({ provider, outcome }, counters.webhooks[provider][outcome])
      }
    }
  })
  new prom.Counter({
    name: names.streamMessages,
    help: 'Broker messages taken by the stream gateways, per broker and outcome (handled, retried, dead_lettered)',
    labelNames: ['broker', 'outcome'],
    registers,
    collect () {
      this.reset()
      for (const broker of STREAM_BROKERS) {
        for (const outcome of STREAM_OUTCOMES) this.inc({ broker, outcome }, counters.streamMessages[broker][outcome])
      }
    }
  })
  new prom.Gauge({
    name: names.busUp,
    help: '1 while the room bus (memory or Redis) takes publishes, else 0',
    registers,
    collect () { this.set(source.isReady() ? 1 : 0) }
  })
  new prom.Gauge({
    name: names.instance,
    help: 'This instance: its id (the prefix of its member ids) and its bus',
    labelNames: ['instance_id', 'bus'],
    registers,
    collect () { this.set({ instance_id: source.instanceId, bus: source.bus.name }, 1) }
  })
  return [names.connections, names.rooms, names.eventsPublished, names.deliveries, names.disconnects, names.webhooks,
    names.streamMessages, names.busUp, names.instance]
}

/** Default buckets of the HTTP request duration histogram, in seconds. */
export const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The HTTP request duration histogram: `method`, `route` (the route pattern, or `unmatched`) and `status_code`. */
export function httpHistogram (prom: PromClientModule, registry: PromRegistry, prefix: string, buckets: number[]) {
  return new prom.Histogram({
    name: familyNames(prefix).http,
    help: 'HTTP requests answered, by method, route pattern and status code (streams and upgrades excluded)',
    labelNames: ['method', 'route', 'status_code'],
    buckets,
    registers: [registry]
  })
}
