import t from 'tap'
import Fastify from 'fastify'
import mqtt from 'mqtt'
import { mqttGateway, type MqttMessage } from '../plugins/mqtt.js'
import { healthRoutes } from '../routes/health.js'
import { startMosquitto } from './helpers/mosquitto.js'
import { Inbox, startWorker, waitUntil } from './helpers/streams.js'

t.test('mqtt delivery guarantees against mosquitto', async (t) => {
  const broker = await startMosquitto(t)
  if (broker === null) return
  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'test-publisher' })
  t.after(() => publisher.endAsync(true))

  async function startApp (clientId: string, group: string, filter: string, onMessage: (message: MqttMessage) => unknown, extra: object = {}) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(mqttGateway, { url: broker!.url, clientId, group, keepaliveS: 2, reconnectBackoffMs: 50, reconnectBackoffMaxMs: 200, ...extra })
    await app.register(healthRoutes, { checks: { mqtt: () => app.mqtt.isReady() } })
    app.mqtt.on(filter, onMessage)
    await app.ready()
    await waitUntil(() => app.mqtt.isReady(), 10_000, `${clientId} is ready`)
    return app
  }
  const id = (message: MqttMessage) => (message.value as { id: string }).id

  t.test('two instances share one subscription: each message is handled once, by one of them', async (t) => {
    const a = new Inbox<string>()
    const b = new Inbox<string>()
    await startApp('share-a', 'share', 'work/+', (m) => { a.push(id(m)) })
    await startApp('share-b', 'share', 'work/+', (m) => { b.push(id(m)) })
    const ids = Array.from({ length: 20 }, (_, i) => `w${i}`)
    for (const value of ids) await publisher.publishAsync(`work/${value}`, JSON.stringify({ id: value }), { qos: 1 })
    await waitUntil(() => a.items.length + b.items.length >= 20, 10_000, 'all 20 handled')
    // a marker after them: a duplicate would have come before it on the same instance
    await broker.pub(['-q', '1', '-t', 'work/marker', '-m', '{"id":"marker"}'])
    await waitUntil(() => a.items.includes('marker') || b.items.includes('marker'), 10_000, 'the marker')
    const all = [...a.items, ...b.items].filter((v) => v !== 'marker')
    t.same([...all].sort(), [...ids].sort(), 'every message exactly once')
    t.ok(a.items.length > 0 && b.items.length > 0, `both handled some (${a.items.length} and ${b.items.length})`)
  })

  t.test('an instance killed in the middle of a handler gets the message again when it restarts; nothing is lost', async (t) => {
    const options = { url: broker.url, clientId: 'crashy', group: 'crash', keepaliveS: 2, sessionExpiryS: 60 }
    const first = await startWorker(t, { broker: 'mqtt', options, pattern: 'jobs' })
    await broker.pub(['-q', '1', '-t', 'jobs', '-m', '{"id":"j1"}'])
    await broker.pub(['-q', '1', '-t', 'jobs', '-m', '{"id":"j2","hang":true}'])
    await broker.pub(['-q', '1', '-t', 'jobs', '-m', '{"id":"j3"}'])
    await first.lines.waitFor((lines) => lines.includes('entered j2'), 10_000, 'the handler of j2')
    t.ok(first.lines.items.some((line) => line.startsWith('handled j1 ')))
    await first.kill()
    // published while no instance runs: the session keeps it
    await broker.pub(['-q', '1', '-t', 'jobs', '-m', '{"id":"j4"}'])
    const second = await startWorker(t, { broker: 'mqtt', options: { ...options }, pattern: 'jobs', noHang: true })
    await second.lines.waitFor((lines) => lines.filter((line) => line.startsWith('handled')).length >= 3, 15_000, 'j2, j3 and j4')
    const handled = second.lines.items.filter((line) => line.startsWith('handled'))
    t.same(handled.map((line) => line.split(' ')[1]), ['j2', 'j3', 'j4'], 'in order, j1 (acknowledged) not again')
    t.equal(handled[0].split(' ')[3], 'true', 'j2 comes again flagged DUP')
  })

  t.test('a broker restart: /ready answers 503 naming mqtt, then 200, and consumption resumes', async (t) => {
    const got = new Inbox<string>()
    const app = await startApp('restart', 'restart', 'events', (m) => { got.push(id(m)) })
    await broker.pub(['-q', '1', '-t', 'events', '-m', '{"id":"before"}'])
    t.equal(await got.next(), 'before')
    await broker.stop()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 503, 10_000, '/ready says 503')
    t.same((await app.inject('/ready')).json(), { status: 'unavailable', failing: ['mqtt'] })
    await t.rejects(app.mqtt.emit('events', { id: 'x' }), { code: 'GW_STREAM_UNAVAILABLE', statusCode: 503 })
    await broker.start()
    await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 15_000, '/ready says 200 again')
    await broker.pub(['-q', '1', '-t', 'events', '-m', '{"id":"after"}'])
    t.equal(await got.next(), 'after', 'the subscription was made again (the broker kept no session)')
  })

  t.test('closing finishes the in-flight message and flushes emits; what came later waits in the session', async (t) => {
    const got = new Inbox<string>()
    const entered = new Inbox<string>()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let finished = false
    const app = await startApp('closing', 'closing', 'orders', async (m) => {
      got.push(id(m))
      if (id(m) === 'o1') {
        entered.push('o1')
        await gate
        finished = true
      }
    }, { sessionExpiryS: 60 })
    const emitted = new Inbox<string>()
    publisher.on('message', (topic, payload) => { if (topic === 'emitted') emitted.push(payload.toString()) })
    await publisher.subscribeAsync('emitted', { qos: 1 })
    await broker.pub(['-q', '1', '-t', 'orders', '-m', '{"id":"o1"}'])
    await broker.pub(['-q', '1', '-t', 'orders', '-m', '{"id":"o2"}'])
    await entered.next()
    const emit = app.mqtt.emit('emitted', { id: 'e1' })
    const closing = app.close()
    // closing has begun (nothing new is taken) before the handler may finish
    await waitUntil(() => !app.mqtt.isReady(), 5000, 'closing to begin')
    release()
    await closing
    t.ok(finished, 'close waited for the handler')
    await emit
    t.equal(await emitted.next(), '{"id":"e1"}', 'the emit made before close was delivered')
    t.same(got.items, ['o1'], 'o2 was not taken while closing')
    await broker.pub(['-q', '1', '-t', 'orders', '-m', '{"id":"o3"}'])
    const again = new Inbox<string>()
    await startApp('closing', 'closing', 'orders', (m) => { again.push(id(m)) }, { sessionExpiryS: 60 })
    t.same(await again.take(2), ['o2', 'o3'], 'the same client id resumes its session: o1 (acknowledged) does not come again')
  })

  t.test('a host\'s own MQTT.js client carries emits and dead letters and stays open on close', async (t) => {
    const own = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'host-own' })
    t.after(() => own.endAsync(true))
    const got = new Inbox<string>()
    const app = await startApp('hosted', 'hosted', 'hosted', (m) => { got.push(id(m)) }, { client: own })
    await app.mqtt.emit('hosted', { id: 'h1' })
    t.equal(await got.next(), 'h1')
    await app.close()
    t.ok(own.connected, 'the host\'s client stays connected')
  })
})
