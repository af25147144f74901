import t from 'tap'
import { buildTestApp } from './helpers/app.js'
import { inboundParams, listen, post } from './helpers/fake-twilio.js'
import { startRedis, until } from './helpers/redis.js'

const TOKENS = 'server-token-old-0001,server-token-new-0002'

t.test('server.ts with GATEWAYS=sms verifies webhooks with every TWILIO_AUTH_TOKEN and publishes to room sms', async (t) => {
  const { app, logs } = await buildTestApp({ GATEWAYS: 'sms', TWILIO_AUTH_TOKEN: TOKENS })
  t.after(() => app.close())
  const events = listen(app)
  t.equal((await post(app, { params: inboundParams(), token: 'server-token-new-0002' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'server-token-old-0001' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'f00dfeedf00dfeedf00dfeedf00dfeed' })).statusCode, 403)
  t.equal(events.length, 2)
  t.equal(events[0].event, 'sms.received')
  t.equal(typeof app.sms.send, 'function')
  t.equal((await app.inject('/health')).statusCode, 200)
  t.notOk(logs.text().includes('server-token'), 'no token in the logs')
})

t.test('server.ts uses PUBLIC_URL for the URL it verifies', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: 'sms', TWILIO_AUTH_TOKEN: TOKENS, PUBLIC_URL: 'https://sms.example.com' })
  t.after(() => app.close())
  const token = 'server-token-old-0001'
  t.equal((await post(app, { params: inboundParams(), token, signedUrl: 'https://sms.example.com/webhooks/sms' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token })).statusCode, 403)
})

t.test('server.ts with TRUST_PROXY=true rebuilds the URL from the first hop of X-Forwarded-*', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: 'sms', TWILIO_AUTH_TOKEN: TOKENS, TRUST_PROXY: 'true' })
  t.after(() => app.close())
  const res = await post(app, {
    params: inboundParams(),
    token: 'server-token-old-0001',
    signedUrl: 'https://sms.example.com:8443/webhooks/sms',
    headers: { 'x-forwarded-proto': 'https,http', 'x-forwarded-host': 'sms.example.com:8443,lb.internal' }
  })
  t.equal(res.statusCode, 200)
})

t.test('server.ts applies SMS_RATE_PER_MIN to the webhooks', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: 'sms', TWILIO_AUTH_TOKEN: TOKENS, SMS_RATE_PER_MIN: '1' })
  t.after(() => app.close())
  t.equal((await post(app, { params: inboundParams(), token: 'server-token-old-0001' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'server-token-old-0001' })).statusCode, 429)
})

t.test('server.ts refuses to start the sms gateway without TWILIO_AUTH_TOKEN', async (t) => {
  await t.rejects(buildTestApp({ GATEWAYS: 'sms' }), { code: 'GW_CONFIG', message: /TWILIO_AUTH_TOKEN/ })
})

t.test('with REDIS_URL, a Twilio redelivery to another instance is a duplicate: one publish, the same reply', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = { GATEWAYS: 'sms', TWILIO_AUTH_TOKEN: TOKENS, REDIS_URL: redis.url, REDIS_PREFIX: 'sms-test' }
  const a = await buildTestApp(env)
  t.after(() => a.app.close())
  const b = await buildTestApp(env)
  t.after(() => b.app.close())
  for (const { app } of [a, b]) await until(async () => (await app.inject('/ready')).statusCode === 200, 10_000, 'the instance to be ready')
  const params = inboundParams()
  const token = 'server-token-old-0001'
  t.equal((await post(a.app, { params, token })).statusCode, 200)
  t.equal((await post(b.app, { params, token })).statusCode, 200)
  t.same(a.app.rooms.counters.webhooks.sms, { handled: 1, duplicate: 0, rejected: 0, failed: 0 })
  t.same(b.app.rooms.counters.webhooks.sms, { handled: 0, duplicate: 1, rejected: 0, failed: 0 })
})
