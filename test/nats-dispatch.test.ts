import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { connect, type JsMsg } from 'nats'
import { natsGateway, type NatsMessage } from '../plugins/nats.js'
import { startNats } from './helpers/nats.js'
import { Inbox, roomMember, waitUntil } from './helpers/streams.js'

// One nats-server and one app for every dispatch behaviour; each test has its own subjects.
t.test('nats gateway against nats-server -js', async (t) => {
  const server = await startNats(t)
  if (server === null) return

  const app = Fastify()
  t.after(() => app.close())
  await app.register(natsGateway, {
    servers: server.url,
    stream: 'DISPATCH',
    durable: 'dispatch',
    retries: 2,
    retryBackoffMs: 20,
    bridge: ['devices.*.telemetry=device:{1}', 'alerts.>=user:{user.id}']
  })
  const got = {
    orders: new Inbox<NatsMessage>(),
    signup: new Inbox<NatsMessage<{ id: string }>>(),
    payments: new Inbox<NatsMessage>(),
    poison: new Inbox<NatsMessage>(),
    flaky: new Inbox<NatsMessage>()
  }
  app.nats.on('shop.*.orders.*', (message) => { got.orders.push(message) })
  app.nats.on('users.signup', (message) => { got.signup.push(message) }, { schema: z.object({ id: z.string() }) })
  app.nats.on('payments', (message) => { got.payments.push(message) })
  app.nats.on('poison', (message) => {
    got.poison.push(message)
    if ((message.value as { n: number }).n === 1) throw new Error('boom: cannot handle n=1')
  })
  app.nats.on('flaky', (message) => {
    got.flaky.push(message)
    if (message.attempt < 3) throw new Error(`attempt ${message.attempt} fails`)
  })
  const device = roomMember(app, 'device:d1')
  const user = roomMember(app, 'user:42')
  await app.ready()
  await waitUntil(() => app.nats.isReady(), 15_000, 'the nats gateway is ready')

  // the test's own reader of the dead letters, on the stream the gateway made for them
  const nc = await connect({ servers: server.url })
  t.after(() => nc.close())
  const jsm = await nc.jetstreamManager()
  t.same((await jsm.streams.info('DISPATCH')).config.subjects.sort(), ['alerts.>', 'devices.*.telemetry', 'flaky', 'payments', 'poison', 'shop.*.orders.*', 'users.signup'], 'the stream holds the bridged subjects')
  t.same((await jsm.streams.info('DISPATCH_DLQ')).config.subjects.sort(), ['dlq.alerts.>', 'dlq.devices.*.telemetry', 'dlq.flaky', 'dlq.payments', 'dlq.poison', 'dlq.shop.*.orders.*', 'dlq.users.signup'])
  const letters = new Inbox<JsMsg>()
  const reader = await nc.jetstream().consumers.get('DISPATCH_DLQ')
  const readerMessages = await reader.consume()
  t.after(() => readerMessages.stop())
  void (async () => { for await (const m of readerMessages) { letters.push(m); m.ack() } })()
  const letter = async (subject: string) => {
    await letters.waitFor((items) => items.some((m) => m.subject === subject), 15_000, `a dead letter on ${subject}`)
    return letters.items.find((m) => m.subject === subject) as JsMsg
  }

  t.test('a handler of a subject with wildcards gets the JSON value, the actual subject, the * values and the headers', async (t) => {
    await server.publish([{ subject: 'shop.s1.orders.o-9', data: '{"id":9}', headers: { trace: 'abc' } }])
    const message = await got.orders.next()
    t.same(message.value, { id: 9 })
    t.equal(message.subject, 'shop.s1.orders.o-9')
    t.same(message.wildcards, ['s1', 'o-9'])
    t.equal(message.headers.trace, 'abc')
    t.equal(message.stream, 'DISPATCH')
    t.equal(message.attempt, 1)
  })

  t.test('a bridged subject publishes to the room made of its * value, the actual subject as event name', async (t) => {
    await server.publish([{ subject: 'devices.d2.telemetry', data: '{"t":1}' }, { subject: 'devices.d1.telemetry', data: '{"t":21.5}' }])
    t.match(await device.next(), { room: 'device:d1', event: 'devices.d1.telemetry', data: { t: 21.5 } })
    await server.publish([{ subject: 'alerts.fire.now', data: '{"user":{"id":42},"text":"New Message!"}' }])
    t.match(await user.next(), { room: 'user:42', event: 'alerts.fire.now', data: { text: 'New Message!' } })
  })

  t.test('a payload that is not JSON goes to dlq.<subject> with its original bytes, and the flow goes on', async (t) => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0x7b, 0xc3])
    await server.publish([{ subject: 'payments', data: bytes, headers: { trace: 'x-1' } }, { subject: 'payments', data: '{"ok":true}' }])
    t.same((await got.payments.next()).value, { ok: true })
    const dead = await letter('dlq.payments')
    t.same(Buffer.from(dead.data), bytes, 'byte for byte')
    t.match(dead.headers?.get('error'), /not JSON/)
    t.equal(dead.headers?.get('error-type'), 'not-json')
    t.equal(dead.headers?.get('trace'), 'x-1', 'the original headers are kept')
    t.equal(dead.headers?.get('original-subject'), 'payments')
    t.equal(got.payments.items.length, 1)
  })

  t.test('a schema failure and a missing template field go to the dead letters', async (t) => {
    await server.publish([{ subject: 'users.signup', data: '{"id":7}' }, { subject: 'alerts.x', data: '{"text":"who?"}' }, { subject: 'users.signup', data: '{"id":"u-1"}' }])
    t.match((await letter('dlq.users.signup')).headers?.get('error'), /id: .*expected string/)
    t.match((await letter('dlq.alerts.x')).headers?.get('error'), /field user\.id is missing/)
    t.same((await got.signup.next()).value, { id: 'u-1' })
    t.equal(got.signup.items.length, 1)
  })

  t.test('a failing handler is retried through the server (nak with a delay): the delivery count is the attempt', async (t) => {
    await server.publish([{ subject: 'flaky', data: '{"n":1}' }])
    const tries = await got.flaky.take(3)
    t.same(tries.map((m) => m.attempt), [1, 2, 3])
    t.equal(tries[2].seq, tries[0].seq, 'the same message each time')
  })

  t.test('a handler that keeps failing: dead letter after the last attempt, the original terminated, the flow goes on', async (t) => {
    const original = '{ "n": 1,  "spaced": "as sent" }'
    await server.publish([{ subject: 'poison', data: original }, { subject: 'poison', data: '{"n":2}' }])
    const dead = await letter('dlq.poison')
    t.equal(Buffer.from(dead.data).toString(), original)
    t.equal(dead.headers?.get('error'), 'boom: cannot handle n=1')
    t.equal(dead.headers?.get('attempts'), '3')
    await got.poison.waitFor((items) => items.some((m) => (m.value as { n: number }).n === 2), 10_000, 'the next message')
    // acks are sent after the handler: wait for the server to have them all
    await waitUntil(async () => (await jsm.consumers.info('DISPATCH', 'dispatch')).num_ack_pending === 0, 10_000, 'nothing left unacknowledged')
    t.ok(app.rooms.counters.streamMessages.nats.dead_lettered >= 4)
    t.ok(app.rooms.counters.streamMessages.nats.retried >= 2)
  })

  t.test('emit publishes to JetStream and resolves with its ack; msgID deduplicates', async (t) => {
    const first = await app.nats.emit('shop.s2.orders.o-1', { id: 1 }, { headers: { source: 'test' }, msgID: 'order-1' })
    t.match(first, { stream: 'DISPATCH', duplicate: false })
    const again = await app.nats.emit('shop.s2.orders.o-1', { id: 1 }, { msgID: 'order-1' })
    t.equal(again.duplicate, true)
    const message = await got.orders.next()
    t.same(message.value, { id: 1 })
    t.equal(message.headers.source, 'test')
    await t.rejects(app.nats.emit('bad subject', {}), { code: 'GW_STREAM_INVALID', statusCode: 400 })
    await t.rejects(app.nats.emit('orders.*', {}), { code: 'GW_STREAM_INVALID' })
  })
})
