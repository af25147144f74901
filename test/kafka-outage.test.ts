import t from 'tap'
import Fastify from 'fastify'
import { kafkaGateway, type KafkaMessage } from '../plugins/kafka.js'
import { healthRoutes } from '../routes/health.js'
import { logCapture } from './helpers/app.js'
import { Inbox, kafkaPeer, mockTuning, startMockKafka, waitUntil } from './helpers/kcat.js'

t.test('a broker outage (SIGSTOP) turns /ready to 503 and loses no message; redeliveries are handled', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)

  const app = Fastify()
  t.after(async () => {
    mock.resume()
    await app.close()
  })
  await app.register(kafkaGateway, { ...mockTuning(mock), groupId: 'jobs-service' })
  await app.register(healthRoutes, { checks: { kafka: () => app.kafka.isReady() } })
  const handled = new Inbox<KafkaMessage>()
  const entered = new Inbox<number>()
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  app.kafka.on('jobs', async (message) => {
    const { id } = message.value as { id: number }
    if (id === 3 && entered.items.length === 0) {
      entered.push(id)
      await gate
    }
    handled.push(message)
  })
  await app.ready()
  await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
  t.equal((await app.inject('/ready')).statusCode, 200, 'ready once connected')

  const jobs = [1, 2, 3, 4, 5, 6]
  await peer.produce('jobs', jobs.map((id) => ({ key: 'k', value: JSON.stringify({ id }) })))
  await entered.next(15_000, 'the handler of job 3')

  // the brokers stop answering (ports and state kept) while job 3 is being handled
  mock.pause()
  await waitUntil(async () => (await app.inject('/ready')).statusCode === 503, 15_000, '/ready says 503')
  t.same((await app.inject('/ready')).json(), { status: 'unavailable', failing: ['kafka'] })
  // produced during the outage: it must arrive once the brokers are back
  const emitted = app.kafka.emit('jobs', { id: 7 }, { key: 'k' })

  mock.resume()
  // job 3 ends after the outage: its member missed its heartbeats, so the uncommitted jobs come again
  release()
  await emitted
  await handled.waitFor((items) => new Set(items.map((m) => (m.value as { id: number }).id)).size === 7, 30_000, 'all seven jobs')
  const ids = handled.items.map((m) => (m.value as { id: number }).id)
  t.same([...new Set(ids)].sort(), [1, 2, 3, 4, 5, 6, 7], 'no job was lost')
  t.comment(`handled ${ids.length} times for 7 jobs (${ids.length - 7} redeliveries): ${ids.join(',')}`)
  await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 20_000, '/ready says 200 again')
  t.same((await app.inject('/ready')).json(), { status: 'ok' }, 'ready again after the outage')
})

t.test('close does not wait for brokers that stopped answering longer than closeTimeoutMs', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.after(() => app.close())
  await app.register(kafkaGateway, { ...mockTuning(mock), groupId: 'closing', closeTimeoutMs: 500 })
  app.kafka.on('anything', () => {})
  await app.ready()
  await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
  // without the bound, kafkajs would wait out its request timeouts (30 s each) for the fetch and the group leave
  mock.pause()
  await app.close()
  t.match(logs.text(), /close gave up waiting for the brokers/)
  t.notOk(app.kafka.isReady())
})

