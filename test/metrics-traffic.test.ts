import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { metrics } from '../plugins/metrics.js'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { rtcSignalGateway } from '../plugins/rtc-signal.js'
import { openWs, waitFor, type Frames } from './helpers/ws-client.js'
import { parseExposition } from './helpers/prometheus.js'

// The counters move by exactly the traffic each step sends: every gateways_* series is compared before and after,
// and the differences must be exactly the expected ones (nothing else moves).

type Counts = Map<string, number>

async function scrape (app: FastifyInstance): Promise<Counts> {
  const res = await app.inject('/metrics')
  const out: Counts = new Map()
  for (const s of parseExposition(res.body)) {
    if (!s.name.startsWith('gateways_') || s.name === 'gateways_instance_info') continue
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',')
    out.set(labels === '' ? s.name : `${s.name}{${labels}}`, s.value)
  }
  return out
}

function delta (before: Counts, after: Counts): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, value] of after) {
    const d = value - (before.get(key) ?? 0)
    if (d !== 0) out[key] = d
  }
  return out
}

async function start (t: Test, options: { maxPayload?: number, sendBufferBytes?: number } = {}) {
  const app = Fastify()
  await app.register(metrics, { defaultMetrics: false })
  await app.register(wsGateway, { closeTimeoutMs: 500, clientPublishRooms: ['public:*'], ...options })
  await app.register(sseGateway, { heartbeatMs: 60_000, ...(options.sendBufferBytes === undefined ? {} : { sendBufferBytes: options.sendBufferBytes }) })
  await app.register(rtcSignalGateway, { closeTimeoutMs: 500 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, port }
}

async function ws (t: Test, port: number, path = '/ws'): Promise<Frames> {
  const frames = await openWs(`ws://127.0.0.1:${port}${path}`)
  t.after(() => { frames.ws.terminate() })
  await frames.next()
  return frames
}

function sse (t: Test, port: number, room: string) {
  let text = ''
  let res: http.IncomingMessage | null = null
  const req = http.get({ host: '127.0.0.1', port, path: `/sse?room=${room}`, agent: false }, (r) => {
    res = r
    r.setEncoding('utf8')
    r.on('data', (chunk: string) => { text += chunk })
  })
  req.on('error', () => {})
  t.after(() => { req.destroy() })
  return {
    text: () => text,
    ended: () => res?.complete === true || res?.destroyed === true,
    close: () => { req.destroy() }
  }
}

t.test('ws and rtc connections, a ws publish and an SSE delivery move the counters by exactly that', async (t) => {
  const { app, port } = await start(t)
  t.after(() => app.close())
  const base = await scrape(app)

  const a = await ws(t, port)
  const b = await ws(t, port)
  await ws(t, port, '/rtc')
  t.same(delta(base, await scrape(app)), {
    'gateways_connections{transport=ws}': 2,
    'gateways_connections{transport=rtc}': 1
  }, 'two ws and one rtc connection')

  t.same(await a.request({ op: 'join', room: 'public:m' }), { op: 'joined', room: 'public:m' })
  t.same(await b.request({ op: 'join', room: 'public:m' }), { op: 'joined', room: 'public:m' })
  let before = await scrape(app)
  a.send({ op: 'publish', room: 'public:m', event: 'hello', data: { n: 1 }, ref: 'p1' })
  await a.until((f) => f.op === 'ack')
  await b.until((f) => f.op === 'event')
  t.same(delta(before, await scrape(app)), {
    'gateways_events_published_total': 1,
    'gateways_deliveries_total{transport=ws}': 2
  }, 'one ws publish: one event, two ws deliveries')

  before = await scrape(app)
  const stream = sse(t, port, 'public:s')
  await waitFor(() => stream.text().startsWith('retry:'), 5000, 'the SSE stream to open')
  await waitFor(() => app.rooms.size('public:s') === 1, 5000, 'the stream to join')
  const opened = await scrape(app)
  t.same(delta(before, opened), { 'gateways_connections{transport=sse}': 1, gateways_rooms: 1 }, 'one SSE stream in one more room')
  app.rooms.publish('public:s', 'tick', { n: 2 })
  await waitFor(() => stream.text().includes('event: tick'), 5000, 'the SSE event')
  t.same(delta(opened, await scrape(app)), {
    'gateways_events_published_total': 1,
    'gateways_deliveries_total{transport=sse}': 1
  }, 'one SSE delivery')

  before = await scrape(app)
  stream.close()
  b.ws.close(1000)
  await waitFor(() => app.rooms.size('public:s') === 0 && app.rooms.size('public:m') === 1, 5000, 'both to leave')
  await waitFor(() => app.rooms.counters.connections.ws === 1 && app.rooms.counters.connections.sse === 0, 5000, 'the counters to see both go')
  t.same(delta(before, await scrape(app)), {
    'gateways_connections{transport=ws}': -1,
    'gateways_connections{transport=sse}': -1,
    gateways_rooms: -1,
    'gateways_disconnects_total{transport=ws,reason=client}': 1,
    'gateways_disconnects_total{transport=sse,reason=client}': 1
  }, 'a ws client and an SSE client that leave are client disconnects')

  const snapshot = app.rooms.counters.snapshot()
  t.equal(snapshot.eventsPublished, 2, 'the same numbers without Prometheus')
  t.same(snapshot.deliveries, { ws: 2, sse: 1, rtc: 0 })
  snapshot.deliveries.ws = 99
  t.equal(app.rooms.counters.deliveries.ws, 2, 'a snapshot is a copy')
})

t.test('a slow consumer closed with 1013 and a frame over the limit (1009) count as slow_consumer and too_large', async (t) => {
  const { app, port } = await start(t, { maxPayload: 1024, sendBufferBytes: 64 * 1024 })
  t.after(() => app.close())
  const slow = await ws(t, port)
  const fast = await ws(t, port)
  await slow.request({ op: 'join', room: 'public:flood' })
  await fast.request({ op: 'join', room: 'public:flood' })
  const before = await scrape(app)
  slow.ws.pause()
  const payload = 'x'.repeat(64 * 1024)
  let published = 0
  let delivered = 0
  while (app.rooms.size('public:flood') === 2 && published < 2000) {
    const result = app.rooms.publish('public:flood', 'chunk', { n: published, payload }) as { id: string, delivered: number }
    published++
    delivered += result.delivered
    await fast.until((frame) => frame.id === result.id)
  }
  t.equal(app.rooms.size('public:flood'), 1, 'the slow member was dropped')
  await waitFor(() => app.rooms.counters.connections.ws === 1, 5000, 'the slow connection to end')
  t.same(delta(before, await scrape(app)), {
    'gateways_events_published_total': published,
    'gateways_deliveries_total{transport=ws}': delivered,
    'gateways_connections{transport=ws}': -1,
    'gateways_disconnects_total{transport=ws,reason=slow_consumer}': 1
  }, `${published} events, ${delivered} deliveries, one slow consumer`)
  slow.ws.resume()
  t.equal((await slow.waitClose(10_000)).code, 1013)

  const large = await ws(t, port)
  const mid = await scrape(app)
  large.send({ op: 'ping', pad: 'y'.repeat(4096) })
  t.equal((await large.waitClose()).code, 1009)
  await waitFor(() => app.rooms.counters.connections.ws === 1, 5000, 'the large sender to be gone')
  t.same(delta(mid, await scrape(app)), {
    'gateways_connections{transport=ws}': -1,
    'gateways_disconnects_total{transport=ws,reason=too_large}': 1
  }, 'one too_large')
})

t.test('an SSE reader too slow to keep up is cut and counted as slow_consumer', async (t) => {
  const { app, port } = await start(t, { sendBufferBytes: 64 * 1024 })
  t.after(() => app.close())
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => { socket.destroy() })
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  socket.write('GET /sse?room=public:slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  socket.pause()
  await waitFor(() => app.rooms.size('public:slow') === 1, 5000, 'the stream to join')
  const before = await scrape(app)
  const payload = 'x'.repeat(64 * 1024)
  let published = 0
  // the kernel's buffers fill first, then the stream's own queue passes its bound; 2,000 events are far beyond that
  while (app.rooms.size('public:slow') === 1 && published < 2000) {
    app.rooms.publish('public:slow', 'chunk', { n: published, payload })
    published++
    if (published % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.rooms.size('public:slow'), 0, `dropped after ${published} events`)
  const after = delta(before, await scrape(app))
  t.equal(after['gateways_disconnects_total{transport=sse,reason=slow_consumer}'], 1)
  t.equal(after['gateways_connections{transport=sse}'], -1)
  t.equal(after.gateways_events_published_total, published)
})

t.test('connections still open at shutdown count as shutdown disconnects', async (t) => {
  const { app, port } = await start(t)
  const a = await ws(t, port)
  await a.request({ op: 'join', room: 'public:bye' })
  const stream = sse(t, port, 'public:bye')
  await waitFor(() => app.rooms.size('public:bye') === 2, 5000, 'both to join')
  await app.close()
  t.equal((await a.waitClose()).code, 1001)
  const counters = app.rooms.counters.snapshot()
  t.equal(counters.disconnects.ws.shutdown, 1)
  t.equal(counters.disconnects.sse.shutdown, 1)
  t.equal(counters.disconnects.ws.client, 0)
  t.same(counters.connections, { ws: 0, sse: 0, rtc: 0 })
  stream.close()
})
