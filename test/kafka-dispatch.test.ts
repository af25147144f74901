import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { kafkaGateway, type KafkaMessage } from '../plugins/kafka.js'
import type { Member, RoomEvent } from '../lib/rooms/types.js'
import { Inbox, kafkaPeer, mockTuning, startMockKafka, waitUntil } from './helpers/kcat.js'

// One mock cluster and one app (one group join, about 3 s) for every dispatch behaviour; each test has its own topic.
// Everything lives in one parent test so its t.after hooks run when its tests end (not at process exit).
t.test('kafka gateway against the mock cluster', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)
  // a RegExp subscription covers the topics that exist when the consumer starts
  await peer.produce('metrics.cpu', [{ value: '{"load":0.5}' }])
  await peer.produce('metrics.mem', [{ value: '{"used":1024}' }])

  const app = Fastify()
  t.after(() => app.close())
  await app.register(kafkaGateway, { ...mockTuning(mock), groupId: 'dispatch', retries: 2, bridge: ['notifications=user:{user.id}'] })

  const got = {
    orders: new Inbox<KafkaMessage>(),
    metrics: new Inbox<KafkaMessage>(),
    signup: new Inbox<KafkaMessage<{ id: string }>>(),
    payments: new Inbox<KafkaMessage>(),
    flaky: new Inbox<KafkaMessage>(),
    poison: new Inbox<KafkaMessage>(),
    echo: new Inbox<KafkaMessage>(),
    room: new Inbox<RoomEvent>()
  }
  app.kafka.on('orders.created', (message) => { got.orders.push(message) })
  app.kafka.on(/^metrics\./, (message) => { got.metrics.push(message) })
  app.kafka.on('users.signup', (message) => { got.signup.push(message) }, { schema: z.object({ id: z.string() }) })
  app.kafka.on('payments', (message) => { got.payments.push(message) })
  app.kafka.on('flaky', (message) => {
    got.flaky.push(message)
    if ((message.value as { failTimes: number }).failTimes >= message.attempt) throw new Error(`attempt ${message.attempt} fails`)
  })
  app.kafka.on('poison', (message) => {
    got.poison.push(message)
    if ((message.value as { n: number }).n === 1) throw new Error('boom: cannot handle n=1')
  })
  app.kafka.on('echo', (message) => { got.echo.push(message) })

  const member: Member<string> = {
    id: app.rooms.nextMemberId(),
    user: '42',
    transport: 'test',
    encoder: { name: 'test', encode: (event) => event.dataJson },
    deliver: (_encoded, event) => { got.room.push(event) }
  }
  app.rooms.join('user:42', member)

  const dlqTopics = ['users.signup.dlq', 'payments.dlq', 'flaky.dlq', 'poison.dlq', 'notifications.dlq']
  const [dlq] = await Promise.all([
    peer.read(dlqTopics),
    (async () => {
      await app.ready()
      await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
    })()
  ])

  t.test('a handler registered by topic name gets the JSON value, key, headers and position', async (t) => {
    await peer.produce('orders.created', [{ key: 'o-1', value: '{"id":1,"total":9.5}', headers: { trace: 'abc' } }])
    const message = await got.orders.next()
    t.same(message.value, { id: 1, total: 9.5 })
    t.equal(message.key, 'o-1')
    t.equal(message.headers.trace, 'abc')
    t.equal(message.topic, 'orders.created')
    t.type(message.partition, 'number')
    t.equal(message.offset, '0')
    t.equal(message.attempt, 1)
  })

  t.test('a handler registered by RegExp gets the messages of every matching topic', async (t) => {
    await peer.produce('metrics.cpu', [{ value: '{"load":0.9}' }])
    await got.metrics.waitFor((items) => items.length >= 3, 15_000, 'three metrics')
    const seen = got.metrics.items.map((m) => `${m.topic} ${JSON.stringify(m.value)}`).sort()
    t.same(seen, ['metrics.cpu {"load":0.5}', 'metrics.cpu {"load":0.9}', 'metrics.mem {"used":1024}'])
  })

  t.test('a value that fails the handler schema goes straight to the dead-letter topic', async (t) => {
    await peer.produce('users.signup', [{ key: 'u', value: '{"id":5}' }, { key: 'u', value: '{"id":"u-1","extra":true}' }])
    const valid = await got.signup.next()
    t.same(valid.value, { id: 'u-1' }, 'the handler gets the schema output')
    const letter = await dlq('users.signup.dlq').next()
    t.equal(letter.value?.toString(), '{"id":5}')
    t.equal(letter.headers['error-type'], 'schema')
    t.equal(letter.headers.attempts, '0', 'never retried')
    t.match(letter.headers.error, /id: .*expected string/)
    t.equal(got.signup.items.length, 1, 'the handler never saw the invalid value')
  })

  t.test('a message that is not JSON goes to the dead-letter topic with its original bytes, key and headers', async (t) => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0x7b])
    await peer.produce('payments', [{ key: 'p-1', value: bytes, headers: { trace: 'x-1' } }, { key: 'p-1', value: '{"ok":true}' }])
    const next = await got.payments.next()
    t.same(next.value, { ok: true }, 'consumption goes on after the poison message')
    const letter = await dlq('payments.dlq').next()
    t.same(letter.value, bytes)
    t.equal(letter.key, 'p-1')
    t.equal(letter.headers.trace, 'x-1', 'original headers are kept')
    t.equal(letter.headers['error-type'], 'not-json')
    t.match(letter.headers.error, /not JSON/)
    t.equal(letter.headers['original-topic'], 'payments')
    t.equal(letter.headers['original-partition'], String(next.partition))
    t.equal(letter.headers['original-offset'], '0')
    t.equal(got.payments.items.length, 1)
  })

  t.test('a handler that fails and then succeeds within its retries handles the message without a dead letter', async (t) => {
    await peer.produce('flaky', [{ key: 'f', value: '{"failTimes":2}' }, { key: 'f', value: '{"failTimes":0}' }])
    const calls = await got.flaky.take(4)
    t.same(calls.map((m) => [m.offset, m.attempt]), [['0', 1], ['0', 2], ['0', 3], ['1', 1]])
    // a marker with the same key lands in the same partition as a dead letter of this key would, after it
    await peer.produce('flaky.dlq', [{ key: 'f', value: 'marker' }])
    const first = await dlq('flaky.dlq').next()
    t.equal(first.value?.toString(), 'marker', 'no dead letter was written')
  })

  t.test('a handler that keeps failing sends the message to the dead-letter topic after its retries', async (t) => {
    const original = '{ "n": 1,  "spaced": "as sent" }'
    await peer.produce('poison', [{ key: 'k-9', value: original }, { key: 'k-9', value: '{"n":2}' }])
    const letter = await dlq('poison.dlq').next()
    t.equal(letter.value?.toString(), original, 'the original bytes, not a re-encoding')
    t.equal(letter.key, 'k-9')
    t.equal(letter.headers['error-type'], 'handler')
    t.equal(letter.headers.error, 'boom: cannot handle n=1')
    t.equal(letter.headers.attempts, '3', 'one try and two retries')
    t.equal(letter.headers['original-topic'], 'poison')
    t.equal(letter.headers['original-offset'], '0')
    await got.poison.waitFor((items) => items.some((m) => (m.value as { n: number }).n === 2), 15_000, 'the next message')
    const calls = got.poison.items.map((m) => `${(m.value as { n: number }).n}/${m.attempt}`)
    t.same(calls, ['1/1', '1/2', '1/3', '2/1'], 'consumption went on with the next message')
    t.equal(letter.headers['original-partition'], String(got.poison.items[3].partition))
  })

  t.test('a bridged topic publishes each message to the room its template fills, the topic as event name', async (t) => {
    await peer.produce('notifications', [{ value: '{"user":{"id":7},"text":"not yours"}' }, { value: '{"user":{"id":42},"text":"New Message!"}' }])
    const event = await got.room.next()
    t.equal(event.room, 'user:42')
    t.equal(event.event, 'notifications')
    t.same(event.data, { user: { id: 42 }, text: 'New Message!' })
  })

  t.test('a bridged message that lacks a field of its room template goes to the dead-letter topic', async (t) => {
    await peer.produce('notifications', [{ key: 'n', value: '{"text":"who is this for?"}' }])
    const letter = await dlq('notifications.dlq').next()
    t.equal(letter.value?.toString(), '{"text":"who is this for?"}')
    t.equal(letter.headers['error-type'], 'template')
    t.match(letter.headers.error, /field user\.id is missing/)
  })

  t.test('emit writes JSON with its key and headers, and says where it landed', async (t) => {
    const written = await app.kafka.emit('echo', { hello: 'world' }, { key: 'e-1', headers: { source: 'test' } })
    t.equal(written.topic, 'echo')
    const message = await got.echo.next()
    t.same(message.value, { hello: 'world' })
    t.equal(message.key, 'e-1')
    t.equal(message.headers.source, 'test')
    t.equal(message.partition, written.partition)
    t.equal(message.offset, written.offset)
  })
})
