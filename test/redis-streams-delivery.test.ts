import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { redisStreamsGateway, type RedisStreamMessage } from '../plugins/redis-streams.js'
import { healthRoutes } from '../routes/health.js'
import { startRedis } from './helpers/redis.js'
import { Inbox, startWorker, waitUntil } from './helpers/streams.js'

t.test('redis-streams delivery guarantees against redis-server', async (t) => {
  const server = await startRedis(t)
  if (server === null) return
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  redis.on('error', () => {})
  t.after(() => { redis.disconnect() })

  async function startApp (group: string, consumer: string, stream: string, onMessage: (message: RedisStreamMessage) => unknown, extra: object = {}) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(redisStreamsGateway, { url: server!.url, group, consumer, blockMs: 100, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 300, ...extra })
    await app.register(healthRoutes, { checks: { 'redis-streams': () => app.redisStreams.isReady() } })
    app.redisStreams.on(stream, onMessage)
    await app.ready()
    await waitUntil(() => app.redisStreams.isReady(), 10_000, `${consumer} is ready`)
    return app
  }
  const id = (message: RedisStreamMessage) => (message.value as { id: string }).id

  t.test('two instances in one consumer group: each entry is handled once, by one of them', async (t) => {
    const a = new Inbox<string>()
    const b = new Inbox<string>()
    await startApp('share', 'a', 'work', (m) => { a.push(id(m)) }, { count: 1 })
    await startApp('share', 'b', 'work', (m) => { b.push(id(m)) }, { count: 1 })
    const ids = Array.from({ length: 20 }, (_, i) => `w${i}`)
    for (const value of ids) {
      await redis.xadd('work', '*', 'data', JSON.stringify({ id: value }))
      // let both readers take turns
      await new Promise((resolve) => setImmediate(resolve))
    }
    await waitUntil(() => a.items.length + b.items.length >= 20, 10_000, 'all 20 handled')
    await redis.xadd('work', '*', 'data', '{"id":"marker"}')
    await waitUntil(() => a.items.includes('marker') || b.items.includes('marker'), 10_000, 'the marker')
    const all = [...a.items, ...b.items].filter((v) => v !== 'marker')
    t.same([...all].sort(), [...ids].sort(), 'every entry exactly once')
    t.ok(a.items.length > 0 && b.items.length > 0, `both handled some (${a.items.length} and ${b.items.length})`)
    t.same(((await redis.xpending('work', 'share')) as [number])[0], 0, 'nothing left pending')
  })

  t.test('an instance killed in the middle of a handler: another instance claims its entries once idle; nothing is lost', async (t) => {
    const options = { url: server.url, group: 'crash', claimMs: 500, blockMs: 100 }
    const first = await startWorker(t, { broker: 'redis-streams', options: { ...options, consumer: 'first' }, pattern: 'jobs' })
    await redis.xadd('jobs', '*', 'data', '{"id":"j1"}')
    await redis.xadd('jobs', '*', 'data', '{"id":"j2","hang":true}')
    await redis.xadd('jobs', '*', 'data', '{"id":"j3"}')
    await first.lines.waitFor((lines) => lines.includes('entered j2'), 10_000, 'the handler of j2')
    await first.kill()
    await redis.xadd('jobs', '*', 'data', '{"id":"j4"}')
    const second = await startWorker(t, { broker: 'redis-streams', options: { ...options, consumer: 'second' }, pattern: 'jobs', noHang: true })
    await second.lines.waitFor((lines) => ['j2', 'j3', 'j4'].every((v) => lines.some((line) => line.startsWith(`handled ${v} `))), 15_000, 'j2, j3 and j4')
    const handled = second.lines.items.filter((line) => line.startsWith('handled'))
    t.notOk(handled.some((line) => line.startsWith('handled j1 ')), 'j1 (acknowledged) does not come again')
    t.equal(handled.find((line) => line.startsWith('handled j2 '))?.split(' ')[2], '2', 'j2 comes with its delivery count')
    await waitUntil(async () => ((await redis.xpending('jobs', 'crash')) as [number])[0] === 0, 10_000, 'nothing left pending')
  })

  t.test('a restarted consumer of the same name takes its own pending entries back at once', async (t) => {
    const options = { url: server.url, group: 'own', claimMs: 600_000, blockMs: 100, consumer: 'stable' }
    const first = await startWorker(t, { broker: 'redis-streams', options, pattern: 'own' })
    await redis.xadd('own', '*', 'data', '{"id":"k1","hang":true}')
    await first.lines.waitFor((lines) => lines.includes('entered k1'), 10_000, 'the handler of k1')
    await first.kill()
    const second = await startWorker(t, { broker: 'redis-streams', options, pattern: 'own', noHang: true })
    await second.lines.waitFor((lines) => lines.some((line) => line.startsWith('handled k1 ')), 10_000, 'k1 again, long before the claim time')
    t.ok(second.lines.items.some((line) => line.startsWith('handled k1 ')), 'handled again by the restarted consumer')
  })

  t.test('a Redis restart: /ready answers 503 naming redis-streams, then 200; the group is made again and consumption resumes', async (t) => {
    const got = new Inbox<string>()
    const app = await startApp('restart', 'r1', 'events', (m) => { got.push(id(m)) })
    await redis.xadd('events', '*', 'data', '{"id":"before"}')
    t.equal(await got.next(), 'before')
    await server.stop()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 503, 10_000, '/ready says 503')
    t.same((await app.inject('/ready')).json(), { status: 'unavailable', failing: ['redis-streams'] })
    await t.rejects(app.redisStreams.emit('events', { id: 'x' }), { code: 'GW_STREAM_UNAVAILABLE', statusCode: 503 })
    await server.start()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 15_000, '/ready says 200 again')
    // the restart lost the stream and its group (no persistence): the gateway created them again
    await waitUntil(async () => (await redis.exists('events')) === 1, 10_000, 'the stream made again')
    await redis.xadd('events', '*', 'data', '{"id":"after"}')
    t.equal(await got.next(), 'after')
  })

  t.test('closing finishes and acknowledges the entry in hand, flushes emits, and leaves the rest pending for others', async (t) => {
    const got = new Inbox<string>()
    const entered = new Inbox<string>()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let finished = false
    const app = await startApp('closing', 'c1', 'orders', async (m) => {
      got.push(id(m))
      if (id(m) === 'o1') {
        entered.push('o1')
        await gate
        finished = true
      }
    }, { claimMs: 300 })
    await redis.xadd('orders', '*', 'data', '{"id":"o1"}')
    await redis.xadd('orders', '*', 'data', '{"id":"o2"}')
    await entered.next()
    const emit = app.redisStreams.emit('orders', { id: 'o3' })
    const closing = app.close()
    await waitUntil(() => !app.redisStreams.isReady(), 5000, 'closing to begin')
    release()
    await closing
    t.ok(finished, 'close waited for the handler')
    t.match(await emit, { stream: 'orders' })
    t.same(got.items, ['o1'], 'o2 was not started while closing')
    const again = new Inbox<string>()
    await startApp('closing', 'c2', 'orders', (m) => { again.push(id(m)) }, { claimMs: 300 })
    t.same([...await again.take(2, 10_000)].sort(), ['o2', 'o3'], 'o1 (acknowledged) does not come again')
  })

  t.test('a host\'s own ioredis client: used for writes (reads on a duplicate) and left open on close', async (t) => {
    const own = new Redis(server.url)
    t.after(() => own.quit())
    const app = Fastify()
    await app.register(redisStreamsGateway, { redis: own, group: 'host', blockMs: 100 })
    const got = new Inbox<string>()
    app.redisStreams.on('hosted', (m) => { got.push(id(m)) })
    await app.ready()
    await waitUntil(() => app.redisStreams.isReady(), 10_000, 'ready')
    await app.redisStreams.emit('hosted', { id: 'h1' })
    t.equal(await got.next(), 'h1')
    await app.close()
    t.equal(own.status, 'ready', 'the host\'s client stays open')
  })
})
