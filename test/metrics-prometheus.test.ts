import t from 'tap'
import { buildTestApp } from './helpers/app.js'
import { openWs } from './helpers/ws-client.js'
import { requireTool } from './helpers/tools.js'
import { parseExposition, promtoolCheck, startPrometheus, valueOf } from './helpers/prometheus.js'

const TOKEN = 'scrape-token-0123456789'

t.test('METRICS=true serves /metrics that promtool accepts, with no lint problem in the gateways_* families', async (t) => {
  const { app } = await buildTestApp({ METRICS: 'true', GATEWAYS: 'ws,sse' })
  t.after(() => app.close())
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(res.headers['cache-control'], 'no-store')
  const samples = parseExposition(res.body)
  for (const family of ['gateways_connections', 'gateways_rooms', 'gateways_events_published_total', 'gateways_deliveries_total',
    'gateways_disconnects_total', 'gateways_webhooks_total', 'gateways_stream_messages_total', 'gateways_bus_up']) {
    t.ok(samples.some((s) => s.name === family), `${family} is exposed`)
    t.match(res.body, new RegExp(`# TYPE ${family} (gauge|counter)\\n`), `${family} has a TYPE line`)
  }
  t.match(res.body, /# TYPE gateways_events_published_total counter/)
  t.match(res.body, /# TYPE gateways_connections gauge/)
  for (const reason of ['slow_consumer', 'too_large', 'shutdown', 'client']) {
    t.equal(valueOf(samples, 'gateways_disconnects_total', { transport: 'ws', reason }), 0)
  }
  t.equal(valueOf(samples, 'gateways_bus_up'), 1)
  t.ok(samples.some((s) => s.name.startsWith('process_')), 'process_* defaults')
  t.ok(samples.some((s) => s.name.startsWith('nodejs_eventloop_lag')), 'event-loop lag')
  t.ok(samples.some((s) => s.name === 'nodejs_heap_size_used_bytes'), 'nodejs_* defaults')

  const promtool = requireTool(t, 'promtool', ['/usr/bin/promtool'])
  if (promtool === null) return
  const { problems } = promtoolCheck(promtool, res.body)
  t.same(problems.filter((line) => line.includes('gateways_') || line.includes('http_request')), [], 'no lint problem in our families')
  t.notOk(problems.some((line) => /error|parse/i.test(line)), `the exposition parses (${problems.join('; ')})`)
})

t.test('METRICS_TOKEN: /metrics needs Authorization: Bearer <token>, else 401', async (t) => {
  const { app } = await buildTestApp({ METRICS: 'true', METRICS_TOKEN: TOKEN, GATEWAYS: 'ws' })
  t.after(() => app.close())
  const none = await app.inject('/metrics')
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="metrics"')
  t.match(none.json(), { statusCode: 401, error: 'Unauthorized', code: 'GW_METRICS_UNAUTHORIZED' })
  for (const authorization of [`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN.slice(1)}`]) {
    t.equal((await app.inject({ url: '/metrics', headers: { authorization } })).statusCode, 401, authorization)
  }
  const ok = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /gateways_bus_up 1/)
})

t.test('without METRICS there is no /metrics; a lone METRICS_TOKEN is warned about', async (t) => {
  const { app, logs } = await buildTestApp({ METRICS_TOKEN: TOKEN, GATEWAYS: 'ws' })
  t.after(() => app.close())
  t.equal((await app.inject('/metrics')).statusCode, 404)
  t.match(logs.text(), /METRICS_TOKEN is set but METRICS is not true/)
  t.notOk(logs.text().includes(TOKEN), 'the token is never logged')
})

t.test('a real Prometheus server scrapes the app and its query API returns gateways_connections', async (t) => {
  const { app } = await buildTestApp({ METRICS: 'true', METRICS_TOKEN: TOKEN, GATEWAYS: 'ws,sse' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const clients = await Promise.all([1, 2, 3].map(async () => await openWs(`ws://127.0.0.1:${port}/ws`)))
  t.after(() => { for (const c of clients) c.ws.terminate() })
  for (const c of clients) await c.next()
  const prometheus = await startPrometheus(t, { target: `127.0.0.1:${port}`, token: TOKEN })
  if (prometheus === null) return
  let result: Awaited<ReturnType<typeof prometheus.query>> = []
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    result = await prometheus.query('gateways_connections')
    if (result.some((r) => r.metric.transport === 'ws' && r.value[1] === '3')) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const ws = result.find((r) => r.metric.transport === 'ws')
  t.equal(ws?.value[1], '3', `gateways_connections{transport="ws"} is 3 in Prometheus (${prometheus.output()})`)
  t.equal(ws?.metric.job, 'gateways')
  t.same(result.map((r) => r.metric.transport).sort(), ['rtc', 'sse', 'ws'])
  const up = await prometheus.query('up{job="gateways"}')
  t.equal(up[0]?.value[1], '1', 'the scrape with the token succeeds')
  const bus = await prometheus.query('gateways_bus_up')
  t.equal(bus[0]?.value[1], '1')
})
