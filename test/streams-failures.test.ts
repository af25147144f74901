import t from 'tap'
import Fastify from 'fastify'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { Redis } from 'ioredis'
import { mqttGateway } from '../plugins/mqtt.js'
import { natsGateway } from '../plugins/nats.js'
import { redisStreamsGateway } from '../plugins/redis-streams.js'
import { logCapture } from './helpers/app.js'
import { startMosquitto } from './helpers/mosquitto.js'
import { startNats } from './helpers/nats.js'
import { startRedis } from './helpers/redis.js'
import { Inbox, waitUntil } from './helpers/streams.js'

// What goes wrong, in process (so it is measured): lost dead letters, a stuck close, takeovers, streams that exist.

t.test('redis-streams failures', async (t) => {
  const server = await startRedis(t)
  if (server === null) return
  const redis = new Redis(server.url)
  t.after(() => redis.quit())

  t.test('an instance that stopped with an entry in hand: another one claims it once idle (XAUTOCLAIM), with its delivery count', async (t) => {
    const logs = logCapture()
    const first = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    await first.register(redisStreamsGateway, { url: server.url, group: 'claims', consumer: 'gone', blockMs: 50, claimMs: 300, closeTimeoutMs: 100 })
    const entered = new Inbox<string>()
    first.redisStreams.on('claims', async () => {
      entered.push('in')
      await new Promise(() => {})
    })
    await first.ready()
    await waitUntil(() => first.redisStreams.isReady(), 10_000, 'first ready')
    await redis.xadd('claims', '*', 'data', '{"id":"c1"}')
    await entered.next()
    await first.close()
    t.match(logs.text(), /close gave up waiting/)
    const second = Fastify()
    t.after(() => second.close())
    await second.register(redisStreamsGateway, { url: server.url, group: 'claims', consumer: 'other', blockMs: 50, claimMs: 300 })
    const got = new Inbox<{ attempt: number }>()
    second.redisStreams.on('claims', (m) => { got.push(m) })
    await second.ready()
    t.equal((await got.next()).attempt, 2, 'its second delivery')
  })

  t.test('a dead letter that cannot be written leaves the entry pending and tries again; an emit-only gateway is ready', async (t) => {
    // the dead-letter key holds a string: XADD fails with WRONGTYPE
    await redis.set('broken.dlq', 'not a stream')
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.after(() => app.close())
    await app.register(redisStreamsGateway, { url: server.url, group: 'broken', blockMs: 50, retryBackoffMs: 20, bridge: ['broken=room'] })
    await app.ready()
    await waitUntil(() => app.redisStreams.isReady(), 10_000, 'ready')
    await redis.xadd('broken', '*', 'data', 'not json')
    await waitUntil(() => logs.lines.filter((l) => l.includes('could not be handled nor dead-lettered')).length >= 2, 10_000, 'two failed tries')
    t.equal(((await redis.xpending('broken', 'broken')) as [number])[0], 1, 'still pending')
    await redis.del('broken.dlq')
    await waitUntil(async () => (await redis.xlen('broken.dlq')) === 1, 10_000, 'the dead letter written once the key is usable')

    const emitter = Fastify()
    t.after(() => emitter.close())
    await emitter.register(redisStreamsGateway, { url: server.url })
    await emitter.ready()
    await waitUntil(() => emitter.redisStreams.isReady(), 10_000, 'an emit-only gateway is ready')
    t.match(await emitter.redisStreams.emit('emitted', { a: 1 }), { stream: 'emitted' })
  })

  t.test('a pending entry deleted from its stream is acknowledged, not handled; RegExps with nothing to match keep retrying', async (t) => {
    const options = { url: server.url, group: 'deleted', consumer: 'same', blockMs: 50, closeTimeoutMs: 100 }
    const first = Fastify()
    await first.register(redisStreamsGateway, options)
    const entered = new Inbox<string>()
    first.redisStreams.on('deleted', async () => { entered.push('in'); await new Promise(() => {}) })
    await first.ready()
    await waitUntil(() => first.redisStreams.isReady(), 10_000, 'ready')
    const id = await redis.xadd('deleted', '*', 'data', '{}') as string
    await entered.next()
    await first.close()
    await redis.xdel('deleted', id)
    const second = Fastify()
    t.after(() => second.close())
    await second.register(redisStreamsGateway, options)
    second.redisStreams.on('deleted', () => { t.fail('a deleted entry is not handled') })
    await second.ready()
    await waitUntil(async () => ((await redis.xpending('deleted', 'deleted')) as [number])[0] === 0, 10_000, 'acknowledged')

    const logs = logCapture()
    const none = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.after(() => none.close())
    await none.register(redisStreamsGateway, { url: server.url, reconnectBackoffMs: 20 })
    none.redisStreams.on(/^nothing-like-this/, () => {})
    await none.ready()
    await waitUntil(() => logs.text().includes('no stream matches the RegExp handlers'), 10_000, 'the reason logged')
    t.notOk(none.redisStreams.isReady())
  })
})

t.test('nats failures and existing streams', async (t) => {
  const server = await startNats(t)
  if (server === null) return
  const nc = await connect({ servers: server.url })
  t.after(() => nc.close())
  const jsm = await nc.jetstreamManager()

  t.test('an existing stream is extended; a subject another stream holds stays there; a changed ack wait updates the consumer', async (t) => {
    await jsm.streams.add({ name: 'EXISTING', subjects: ['old.one'] })
    await jsm.streams.add({ name: 'OTHER', subjects: ['theirs.*'] })
    const start = async (ackWaitMs: number) => {
      const app = Fastify()
      t.after(() => app.close())
      await app.register(natsGateway, { servers: server.url, stream: 'EXISTING', durable: 'ext', ackWaitMs })
      app.nats.on('new.one', () => {})
      app.nats.on('new.two', () => {})
      app.nats.on('theirs.x', () => {})
      await app.ready()
      await waitUntil(() => app.nats.isReady(), 15_000, 'ready')
      return app
    }
    const app = await start(30_000)
    t.same((await jsm.streams.info('EXISTING')).config.subjects.sort(), ['new.one', 'new.two', 'old.one'])
    t.same((await jsm.streams.info('OTHER')).config.subjects, ['theirs.*'], 'left with the stream that had it')
    await app.close()
    await start(20_000)
    t.equal((await jsm.consumers.info('EXISTING', 'ext')).config.ack_wait, 20_000 * 1_000_000)
  })

  t.test('RegExp handlers need an existing stream; a dead letter that cannot be published is retried; close is bounded', async (t) => {
    const logs = logCapture()
    const regexp = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.after(() => regexp.close())
    await regexp.register(natsGateway, { servers: server.url, stream: 'MISSING', reconnectBackoffMs: 20 })
    regexp.nats.on(/^x/, () => {})
    await regexp.ready()
    await waitUntil(() => logs.text().includes('the stream MISSING must exist for RegExp handlers'), 10_000, 'the reason logged')
    await regexp.close()

    const failing = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: failing.stream } })
    await app.register(natsGateway, { servers: server.url, stream: 'DLQFAIL', durable: 'dlqfail', retryBackoffMs: 20, closeTimeoutMs: 100 })
    const entered = new Inbox<string>()
    app.nats.on('dlqfail', async (m) => {
      if ((m.value as { hang?: boolean }).hang === true) {
        entered.push('in')
        await new Promise(() => {})
      }
    })
    await app.ready()
    await waitUntil(() => app.nats.isReady(), 15_000, 'ready')
    // without its dead-letter stream, the dead letter has nowhere to go
    await jsm.streams.delete('DLQFAIL_DLQ')
    await app.nats.emit('dlqfail', 'not an object')
    await nc.jetstream().publish('dlqfail', Buffer.from('not json'))
    await waitUntil(() => failing.lines.filter((l) => l.includes('could not be handled nor dead-lettered')).length >= 2, 10_000, 'two failed tries')
    await app.nats.emit('dlqfail', { hang: true })
    await entered.next()
    await app.close()
    t.match(failing.text(), /close gave up waiting/)

    const emitter = Fastify()
    t.after(() => emitter.close())
    await emitter.register(natsGateway, { servers: server.url })
    await emitter.ready()
    await waitUntil(() => emitter.nats.isReady(), 10_000, 'an emit-only gateway is ready')
  })
})

t.test('mqtt failures', async (t) => {
  const broker = await startMosquitto(t)
  if (broker === null) return

  t.test('a dead letter that cannot be sent drops the connection without a PUBACK, to get the message again', async (t) => {
    const producer = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'lost-producer' })
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    t.after(() => app.close())
    await app.register(mqttGateway, { url: broker.url, clientId: 'lossy', client: producer, reconnectBackoffMs: 50 })
    app.mqtt.on('lossy', () => {})
    await app.ready()
    await waitUntil(() => app.mqtt.isReady(), 10_000, 'ready')
    await producer.endAsync()
    await broker.pub(['-q', '1', '-t', 'lossy', '-m', 'not json'])
    await waitUntil(() => logs.lines.filter((l) => l.includes('mqtt: consumer connected')).length >= 2 &&
      logs.text().includes('could not be handled nor dead-lettered'), 10_000, 'the failed dead letter and a new connection')
    t.match(logs.text(), /"sessionPresent":true/, 'the session (and the message) were kept')
  })

  t.test('close gives up on a handler that never ends after closeTimeoutMs', async (t) => {
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    await app.register(mqttGateway, { url: broker.url, clientId: 'stuck', closeTimeoutMs: 100 })
    const entered = new Inbox<string>()
    app.mqtt.on('stuck', async () => { entered.push('in'); await new Promise(() => {}) })
    await app.ready()
    await waitUntil(() => app.mqtt.isReady(), 10_000, 'ready')
    await broker.pub(['-q', '1', '-t', 'stuck', '-m', '{}'])
    await entered.next()
    await app.close()
    t.match(logs.text(), /close gave up waiting/)
  })
})
