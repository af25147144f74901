import t from 'tap'
import Fastify from 'fastify'
import { kafkaGateway, type KafkaMessage } from '../plugins/kafka.js'
import { logCapture } from './helpers/app.js'
import { Inbox, kafkaPeer, mockTuning, startMockKafka, waitUntil } from './helpers/kcat.js'

t.test('closing the app loses nothing and a restarted consumer does not repeat handled messages', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)

  async function startApp (brokers: string[] | (() => Promise<string[]>), onMessage: (message: KafkaMessage) => unknown) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(kafkaGateway, { ...mockTuning(mock as NonNullable<typeof mock>), brokers, groupId: 'orders-service' })
    app.kafka.on('orders', onMessage)
    await app.ready()
    await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
    return app
  }

  // first instance: handles o1, dead-letters a poison message, and is closed while handling o4
  const first = new Inbox<KafkaMessage>()
  const entered = new Inbox<string>()
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let finishedSlow = false
  const app1 = await startApp(mock.brokers, async (message) => {
    first.push(message)
    const { id } = message.value as { id: string }
    if (id === 'o4') {
      entered.push(id)
      await gate
      finishedSlow = true
    }
  })
  await peer.produce('orders', [
    { key: 'k', value: '{"id":"o1"}' }, { key: 'k', value: 'not json' }, { key: 'k', value: '{"id":"o3"}' }, { key: 'k', value: '{"id":"o4"}' }
  ])
  await entered.next(15_000, 'the slow handler of o4')
  // a message emitted just before close must be flushed by it
  const emitted = app1.kafka.emit('orders', { id: 'o5' }, { key: 'k' })
  const closing = app1.close()
  release()
  await closing
  t.ok(finishedSlow, 'close waited for the in-flight handler')
  t.same(first.items.map((m) => (m.value as { id: string }).id), ['o1', 'o3', 'o4'])
  const written = await emitted
  t.match(written, { topic: 'orders', offset: '4' }, 'the emit made before close was written')

  // second instance, same group; the broker list is a function this time
  const second = new Inbox<KafkaMessage>()
  await startApp(async () => mock.brokers, (message) => { second.push(message) })
  const next = await second.next(15_000, 'the first message of the restarted consumer')
  // all of them share one key, so one partition and one order: anything repeated would have come before o5
  t.same(next.value, { id: 'o5' }, 'it starts after the handled, dead-lettered and in-flight messages')
  t.equal(next.offset, '4')
})

t.test('a handler that runs longer than the session timeout keeps its member in the group (no rebalance, no repeat)', async (t) => {
  // one broker: its one fetcher is busy with the slow message, so only the gateway's own heartbeats keep the member
  const mock = await startMockKafka(t, { brokers: 1 })
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.after(() => app.close())
  const tuning = mockTuning(mock)
  await app.register(kafkaGateway, { ...tuning, groupId: 'slow-service' })
  const handled = new Inbox<string>()
  app.kafka.on('reports', async (message) => {
    const { id, ms } = message.value as { id: string, ms: number }
    // deliberately slow work: longer than the 3.5 s session timeout
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
    handled.push(id)
  })
  await app.ready()
  await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
  await peer.produce('reports', [
    { key: 'k', value: JSON.stringify({ id: 'slow', ms: tuning.sessionTimeout + 1500 }) },
    { key: 'k', value: JSON.stringify({ id: 'next', ms: 0 }) }
  ])
  t.same(await handled.take(2, 20_000), ['slow', 'next'])
  t.ok(app.kafka.isReady(), 'still ready')
  const joins = logs.lines.filter((line) => line.includes('kafka: consumer joined its group'))
  t.equal(joins.length, 1, 'the member never had to rejoin')
  // a marker after both: anything repeated would come before it (one key, one partition)
  await peer.produce('reports', [{ key: 'k', value: JSON.stringify({ id: 'marker', ms: 0 }) }])
  t.equal(await handled.next(15_000), 'marker', 'the slow message was not delivered again')
})
