import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { metrics } from '../plugins/metrics.js'
import { stripeGateway } from '../plugins/stripe.js'
import { kafkaGateway } from '../plugins/kafka.js'
import { parseExposition } from './helpers/prometheus.js'
import { WEBHOOK_SECRET, eventPayload, sign } from './helpers/fake-stripe.js'
import { kafkaPeer, mockTuning, startMockKafka, waitUntil } from './helpers/kcat.js'

// The webhook and stream families move by exactly what a provider or a broker sends: every gateways_* series is
// compared before and after, and only the expected ones change. The counting itself lives in the webhook pipeline
// (lib/webhooks) and the stream processor (plugins/kafka.ts `count`); this file checks what /metrics makes of it.

type Counts = Map<string, number>

async function scrape (app: FastifyInstance): Promise<Counts> {
  const out: Counts = new Map()
  for (const s of parseExposition(await app.metrics.text())) {
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

t.test('a Stripe webhook with a bad signature is one rejected delivery; a signed one is one handled', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(metrics, { defaultMetrics: false, httpMetrics: false })
  await app.register(stripeGateway, { webhookSecret: WEBHOOK_SECRET, on: { 'invoice.paid': async () => {} } })
  await app.ready()
  const payload = eventPayload('invoice.paid', { id: 'in_1', object: 'invoice' })
  let before = await scrape(app)
  const forged = await app.inject({
    method: 'POST', url: '/webhooks/stripe', payload,
    headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload, 'whsec_another_secret_0123456789') }
  })
  t.equal(forged.statusCode, 400)
  t.same(delta(before, await scrape(app)), { 'gateways_webhooks_total{provider=stripe,outcome=rejected}': 1 })

  before = await scrape(app)
  const signed = await app.inject({ method: 'POST', url: '/webhooks/stripe', payload, headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload) } })
  t.equal(signed.statusCode, 200)
  t.same(delta(before, await scrape(app)), { 'gateways_webhooks_total{provider=stripe,outcome=handled}': 1 })
})

t.test('a Kafka message whose handler keeps failing is retried, then one dead letter', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)
  await peer.produce('jobs', [{ key: 'warm', value: '{"warm":true}' }])
  const app = Fastify()
  t.after(() => app.close())
  await app.register(metrics, { defaultMetrics: false, httpMetrics: false })
  await app.register(kafkaGateway, { ...mockTuning(mock), groupId: 'metrics', retries: 2 })
  let calls = 0
  app.kafka.on('jobs', (message) => {
    if ((message.value as { warm?: boolean }).warm === true) return
    calls++
    throw new Error('cannot handle this job')
  })
  const [dlq] = await Promise.all([peer.read(['jobs.dlq']), (async () => {
    await app.ready()
    await waitUntil(() => app.kafka.isReady(), 20_000, 'the kafka gateway is ready')
  })()])
  await waitUntil(async () => (await scrape(app)).get('gateways_stream_messages_total{broker=kafka,outcome=handled}') === 1, 20_000, 'the warm-up message handled')
  const before = await scrape(app)
  await peer.produce('jobs', [{ key: 'job-1', value: '{"n":1}' }])
  const letter = await dlq('jobs.dlq').next()
  t.equal(letter.key, 'job-1')
  await waitUntil(async () => (await scrape(app)).get('gateways_stream_messages_total{broker=kafka,outcome=dead_lettered}') === 1, 10_000, 'the dead letter counted')
  t.equal(calls, 3, 'the first attempt and two retries')
  t.same(delta(before, await scrape(app)), {
    'gateways_stream_messages_total{broker=kafka,outcome=retried}': 2,
    'gateways_stream_messages_total{broker=kafka,outcome=dead_lettered}': 1
  })
})
