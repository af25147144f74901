import t from 'tap'
import Fastify from 'fastify'
import { natsGateway, type NatsMessage } from '../plugins/nats.js'
import { healthRoutes } from '../routes/health.js'
import { startNats } from './helpers/nats.js'
import { Inbox, startWorker, waitUntil } from './helpers/streams.js'

t.test('nats delivery guarantees against nats-server -js', async (t) => {
  const server = await startNats(t)
  if (server === null) return

  async function startApp (stream: string, durable: string, subject: string, onMessage: (message: NatsMessage) => unknown, extra: object = {}) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(natsGateway, { servers: server!.url, stream, durable, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 300, ...extra })
    await app.register(healthRoutes, { checks: { nats: () => app.nats.isReady() } })
    app.nats.on(subject, onMessage)
    await app.ready()
    await waitUntil(() => app.nats.isReady(), 15_000, `${durable} is ready`)
    return app
  }
  const id = (message: NatsMessage) => (message.value as { id: string }).id

  t.test('two instances share one durable consumer: each message is handled once, by one of them', async (t) => {
    const a = new Inbox<string>()
    const b = new Inbox<string>()
    // a small pull each, so both get work
    await startApp('SHARE', 'share', 'work.*', (m) => { a.push(id(m)) }, { maxAckPending: 2 })
    const app = await startApp('SHARE', 'share', 'work.*', (m) => { b.push(id(m)) }, { maxAckPending: 2 })
    const ids = Array.from({ length: 20 }, (_, i) => `w${i}`)
    await server.publish(ids.map((value) => ({ subject: `work.${value}`, data: JSON.stringify({ id: value }) })))
    await waitUntil(() => a.items.length + b.items.length >= 20, 15_000, 'all 20 handled')
    await app.nats.emit('work.marker', { id: 'marker' })
    await waitUntil(() => a.items.includes('marker') || b.items.includes('marker'), 10_000, 'the marker')
    const all = [...a.items, ...b.items].filter((v) => v !== 'marker')
    t.same([...all].sort(), [...ids].sort(), 'every message exactly once')
    t.ok(a.items.length > 0 && b.items.length > 0, `both handled some (${a.items.length} and ${b.items.length})`)
  })

  t.test('an instance killed in the middle of a handler: the message comes again to the next instance; nothing is lost', async (t) => {
    const options = { servers: server.url, stream: 'CRASH', durable: 'crash', ackWaitMs: 1500 }
    const first = await startWorker(t, { broker: 'nats', options, pattern: 'jobs' })
    await server.publish([
      { subject: 'jobs', data: '{"id":"j1"}' }, { subject: 'jobs', data: '{"id":"j2","hang":true}' }, { subject: 'jobs', data: '{"id":"j3"}' }
    ])
    await first.lines.waitFor((lines) => lines.includes('entered j2'), 15_000, 'the handler of j2')
    await first.kill()
    await server.publish([{ subject: 'jobs', data: '{"id":"j4"}' }])
    const second = await startWorker(t, { broker: 'nats', options, pattern: 'jobs', noHang: true })
    await second.lines.waitFor((lines) => ['j2', 'j3', 'j4'].every((v) => lines.some((line) => line.startsWith(`handled ${v} `))), 15_000, 'j2, j3 and j4')
    const handled = second.lines.items.filter((line) => line.startsWith('handled'))
    t.notOk(handled.some((line) => line.startsWith('handled j1 ')), 'j1 (acknowledged) does not come again')
    const j2 = handled.find((line) => line.startsWith('handled j2 ')) as string
    t.ok(Number(j2.split(' ')[2]) >= 2, `j2 is a redelivery (${j2})`)
  })

  t.test('a server restart: /ready answers 503 naming nats, then 200, and consumption resumes', async (t) => {
    const got = new Inbox<string>()
    const app = await startApp('RESTART', 'restart', 'events', (m) => { got.push(id(m)) })
    await server.publish([{ subject: 'events', data: '{"id":"before"}' }])
    t.equal(await got.next(), 'before')
    await server.stop()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 503, 10_000, '/ready says 503')
    t.same((await app.inject('/ready')).json(), { status: 'unavailable', failing: ['nats'] })
    await t.rejects(app.nats.emit('events', { id: 'x' }), { code: 'GW_STREAM_UNAVAILABLE', statusCode: 503 })
    await server.start()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 20_000, '/ready says 200 again')
    await server.publish([{ subject: 'events', data: '{"id":"after"}' }])
    t.equal(await got.next(15_000), 'after')
  })

  t.test('closing finishes the message in hand, releases those pulled ahead at once, and flushes emits', async (t) => {
    const got = new Inbox<string>()
    const entered = new Inbox<string>()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let finished = false
    // a long ack wait: what was pulled ahead can only come back quickly if closing releases it
    const app = await startApp('CLOSING', 'closing', 'orders', async (m) => {
      got.push(id(m))
      if (id(m) === 'o1') {
        entered.push('o1')
        await gate
        finished = true
      }
    }, { ackWaitMs: 60_000 })
    await server.publish([{ subject: 'orders', data: '{"id":"o1"}' }, { subject: 'orders', data: '{"id":"o2"}' }])
    await entered.next()
    const emit = app.nats.emit('orders', { id: 'o3' })
    const closing = app.close()
    await waitUntil(() => !app.nats.isReady(), 5000, 'closing to begin')
    release()
    await closing
    t.ok(finished, 'close waited for the handler')
    t.match(await emit, { stream: 'CLOSING' }, 'the emit made before close was stored')
    t.same(got.items, ['o1'], 'o2 was not started while closing')
    const again = new Inbox<string>()
    await startApp('CLOSING', 'closing', 'orders', (m) => { again.push(id(m)) }, { ackWaitMs: 60_000 })
    t.same([...await again.take(2, 10_000)].sort(), ['o2', 'o3'], 'o2 was released (no ack wait), o1 (acknowledged) does not come again')
  })

  t.test('a host\'s own nats.js connection: used for everything and left open on close', async (t) => {
    const { connect } = await import('nats')
    const own = await connect({ servers: server.url })
    t.after(() => own.close())
    const app = Fastify()
    await app.register(natsGateway, { connection: own, stream: 'HOSTED', durable: 'hosted' })
    const got = new Inbox<string>()
    app.nats.on('hosted', (m) => { got.push(id(m)) })
    await app.ready()
    await waitUntil(() => app.nats.isReady(), 10_000, 'ready')
    await app.nats.emit('hosted', { id: 'h1' })
    t.equal(await got.next(), 'h1')
    await app.close()
    t.notOk(own.isClosed(), 'the host\'s connection stays open')
  })
})
