import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type * as PromClient from 'prom-client'
import { ensureRooms } from './rooms.js'
import { loadPeer } from '../lib/peer.js'
import { decoratorOption, parseOptions, pathOption } from '../lib/options.js'
import { HTTP_BUCKETS, familyNames, httpHistogram, registerGatewayMetrics, type PromClientModule } from '../lib/metrics/prometheus.js'
import { metricsRoutes } from '../routes/metrics.js'

export type { CountersSnapshot, DisconnectReason, StreamBroker, StreamOutcome, WebhookOutcome, WebhookProvider } from '../lib/metrics/counters.js'

const PLUGIN = 'fastify-gateways/metrics'

const MetricsOptions = z.strictObject({
  /** the route that serves the exposition; false: no route (serve `app.metrics.registry` yourself) */
  path: z.union([pathOption, z.literal(false)]).default('/metrics'),
  /** when set, the route needs `Authorization: Bearer <token>` (compared in constant time), else 401 */
  token: z.string().min(1, { error: 'must not be empty' }).optional(),
  /** put before every family name this plugin registers, e.g. `edge_` (Fastify keeps `prefix` for route prefixes) */
  metricPrefix: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/, { error: 'must be a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)' }).default(''),
  /** a prom-client Registry of the host's own (e.g. prom-client's global `register`); default: a new one */
  registry: z.custom<PromClient.Registry>((v) => typeof (v as PromClient.Registry)?.registerMetric === 'function' &&
    typeof (v as PromClient.Registry)?.metrics === 'function', { error: 'must be a prom-client Registry' }).optional(),
  /** prom-client's process_* and nodejs_* families (event-loop lag, GC, heap, handles...) */
  defaultMetrics: z.boolean().default(true),
  /** the HTTP request duration histogram (`http_request_duration_seconds`) */
  httpMetrics: z.boolean().default(true),
  /** its buckets, in seconds */
  httpBuckets: z.array(z.number().positive()).min(1).optional(),
  /** the decorator: `app.metrics` by default */
  decorator: decoratorOption('metrics')
})

export type MetricsOptions = z.input<typeof MetricsOptions>

/** `app.metrics` (or the `decorator` option's name) */
export interface MetricsApi {
  /** the prom-client registry the families are on: add the host's own metrics to it */
  readonly registry: PromClient.Registry
  /** the exposition text, as the route serves it */
  text (): Promise<string>
  /** its content type */
  readonly contentType: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus metrics of the gateways (fastify-gateways/metrics) */
    metrics: MetricsApi
  }
}

/**
 * Prometheus metrics of the gateways (docs/operations.md): the `gateways_*` families read from
 * `app.rooms.counters` at scrape time, the HTTP request duration per route and status, and prom-client's process and
 * Node.js defaults (event-loop lag included), served on `path`. prom-client is an optional peer dependency, loaded
 * here: a host that does not register this plugin never installs it.
 */
async function metricsPlugin (app: FastifyInstance, raw: MetricsOptions) {
  const options = parseOptions(PLUGIN, MetricsOptions, raw)
  const prom = await loadPeer<PromClientModule>('prom-client', 'metrics', () => import('prom-client'))
  const registry = options.registry ?? new prom.Registry()
  const rooms = await ensureRooms(app)
  const names = registerGatewayMetrics(prom, registry, rooms, options.metricPrefix)

  const processFamily = `${options.metricPrefix}process_cpu_user_seconds_total`
  if (options.defaultMetrics && registry.getSingleMetric(processFamily) === undefined) {
    // a host registry that already collects the defaults keeps its own
    prom.collectDefaultMetrics({ register: registry, prefix: options.metricPrefix })
  }

  if (options.httpMetrics) {
    const histogram = httpHistogram(prom, registry, options.metricPrefix, options.httpBuckets ?? HTTP_BUCKETS)
    names.push(familyNames(options.metricPrefix).http)
    // replies that went through onSend; hijacked ones (SSE streams, WebSocket upgrades) live for minutes and are not
    // request latencies
    const answered = new WeakSet<FastifyReply>()
    app.addHook('onSend', async (_request, reply, payload) => {
      answered.add(reply)
      return payload
    })
    app.addHook('onResponse', async (request, reply) => {
      if (!answered.has(reply)) return
      histogram.observe({
        method: request.method,
        // the pattern, never the raw URL: unmatched paths (404s, scanners) share one series
        route: request.routeOptions.url ?? 'unmatched',
        status_code: reply.statusCode
      }, reply.elapsedTime / 1000)
    })
  }

  const api: MetricsApi = {
    registry,
    text: async () => await registry.metrics(),
    get contentType () { return registry.contentType }
  }
  app.decorate(options.decorator, api)
  // a host registry outlives the app: take this app's families off it (the defaults stay: they describe the process,
  // and the host's own metrics are the host's)
  app.addHook('onClose', async () => {
    if (options.registry === undefined) registry.clear()
    else for (const name of names) registry.removeSingleMetric(name)
  })

  if (options.path !== false) {
    await app.register(metricsRoutes, { path: options.path, token: options.token, metrics: api })
  }
}

export const metrics = fp(metricsPlugin, { fastify: '5.x', name: PLUGIN })
export default metrics
