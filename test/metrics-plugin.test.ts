import t from 'tap'
import Fastify from 'fastify'
import { Registry, Counter } from 'prom-client'
import { metrics } from '../plugins/metrics.js'
import { sseGateway } from '../plugins/sse.js'
import { parseExposition, valueOf } from './helpers/prometheus.js'
import { waitFor } from './helpers/ws-client.js'
import http from 'node:http'

t.test('options: a prefix, a host registry of its own, no defaults, another path and decorator', async (t) => {
  const registry = new Registry()
  const own = new Counter({ name: 'host_orders_total', help: 'orders', registers: [registry] })
  own.inc(3)
  const app = Fastify()
  await app.register(metrics, { metricPrefix: 'edge_', registry, defaultMetrics: false, path: '/internal/metrics', decorator: 'gwMetrics' })
  await app.ready()
  const res = await app.inject('/internal/metrics')
  t.equal(res.statusCode, 200)
  const samples = parseExposition(res.body)
  t.equal(valueOf(samples, 'host_orders_total'), 3, "the host's own metric is served too")
  t.equal(valueOf(samples, 'edge_gateways_bus_up'), 1)
  t.ok(samples.some((s) => s.name === 'edge_gateways_connections'))
  t.notOk(samples.some((s) => s.name.startsWith('process_') || s.name.startsWith('edge_process_')), 'no defaults')
  t.equal((await app.inject('/metrics')).statusCode, 404)
  const api = (app as unknown as { gwMetrics: { registry: Registry, text: () => Promise<string>, contentType: string } }).gwMetrics
  t.equal(api.registry, registry)
  t.match(await api.text(), /edge_gateways_rooms 0/)
  t.match(api.contentType, /^text\/plain/)
  await app.close()
  t.ok(registry.getSingleMetric('host_orders_total'), "the host's metric stays on its registry")
  t.notOk(registry.getSingleMetric('edge_gateways_bus_up'), "this app's families are taken off it at close")

  // the same registry serves a second app (no "already registered" error)
  const again = Fastify()
  t.after(() => again.close())
  await again.register(metrics, { metricPrefix: 'edge_', registry, path: false })
  await again.ready()
  t.equal((await again.inject('/metrics')).statusCode, 404, 'path: false serves no route')
  t.match(await again.metrics.text(), /edge_gateways_bus_up 1/)
  t.match(await again.metrics.text(), /edge_process_cpu_user_seconds_total/, 'defaults with the prefix')
  await again.close()
  t.ok(registry.getSingleMetric('host_orders_total'), "the host's metric stays after an app with defaults closes too")
  t.ok(registry.getSingleMetric('edge_process_cpu_user_seconds_total'), 'so do the defaults')
  t.notOk(registry.getSingleMetric('edge_http_request_duration_seconds'))
})

t.test('a registry that already collects the defaults keeps its own', async (t) => {
  const registry = new Registry()
  const first = Fastify()
  await first.register(metrics, { registry })
  await first.ready()
  await first.close()
  t.ok(registry.getSingleMetric('process_cpu_user_seconds_total'), 'the process defaults outlive the app on a host registry')
  const second = Fastify()
  t.after(() => second.close())
  await second.register(metrics, { registry })
  await second.ready()
  t.match(await second.metrics.text(), /process_cpu_user_seconds_total/)
})

t.test('HTTP request duration by method, route pattern and status; unmatched paths share one series; streams are left out', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(metrics, { defaultMetrics: false, httpBuckets: [0.5, 5] })
  await app.register(sseGateway, { heartbeatMs: 60_000 })
  app.get('/orders/:id', async () => ({ ok: true }))
  app.post('/orders', async (_request, reply) => reply.code(201).send({}))
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.inject('/orders/1')
  await app.inject('/orders/2')
  await app.inject({ method: 'POST', url: '/orders', payload: {} })
  await app.inject('/nope/1')
  await app.inject('/nope/2')
  // an SSE stream that opens and closes: a hijacked reply, not a request latency
  const { port } = app.server.address() as { port: number }
  let got = ''
  const req = http.get({ host: '127.0.0.1', port, path: '/sse?room=public:x', agent: false }, (res) => { res.on('data', (c: Buffer) => { got += c.toString() }) })
  req.on('error', () => {})
  await waitFor(() => got.startsWith('retry:'), 5000, 'the stream')
  req.destroy()
  await waitFor(() => app.rooms.counters.connections.sse === 0, 5000, 'the stream to end')
  const samples = parseExposition(await app.metrics.text())
  const count = (labels: Record<string, string>) => valueOf(samples, 'http_request_duration_seconds_count', labels)
  t.equal(count({ method: 'GET', route: '/orders/:id', status_code: '200' }), 2)
  t.equal(count({ method: 'POST', route: '/orders', status_code: '201' }), 1)
  t.equal(count({ method: 'GET', route: 'unmatched', status_code: '404' }), 2)
  t.notOk(samples.some((s) => s.name === 'http_request_duration_seconds_count' && s.labels.route === '/sse'), 'no SSE series')
  t.ok(samples.some((s) => s.name === 'http_request_duration_seconds_bucket' && s.labels.le === '0.5'), 'the buckets given')
})

t.test('httpMetrics: false adds no hooks; bad options are refused by name', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(metrics, { httpMetrics: false, defaultMetrics: false })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  t.notMatch(await app.metrics.text(), /http_request_duration_seconds/)
  for (const [options, message] of [
    [{ metricPrefix: '1x' }, /metricPrefix: must be a Prometheus metric name prefix/],
    [{ registry: {} }, /registry: must be a prom-client Registry/],
    [{ token: '' }, /token: must not be empty/],
    [{ path: 'metrics' }, /path/],
    [{ nope: 1 }, /unknown option "nope"/]
  ] as const) {
    await t.rejects(async () => {
      const bad = Fastify()
      await bad.register(metrics, options as never)
      await bad.ready()
    }, { code: 'GW_INVALID_OPTIONS', message })
  }
})
