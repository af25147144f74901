import t, { type Test } from 'tap'
import { buildTestApp } from './helpers/app.js'
import { loadConfig, ConfigError } from '../lib/config.js'
import type { RoomEvent } from '../lib/rooms/types.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { startRedis, until } from './helpers/redis.js'
import { STORE_ID, STORE_PASSWORD, formBody, md5, sign, startFakeSslcommerz, unpaidFields, type FakeSslcommerz } from './helpers/fake-sslcommerz.js'

function listen (rooms: RoomRegistry, room: string): RoomEvent[] {
  const got: RoomEvent[] = []
  rooms.join(room, { id: rooms.nextMemberId(), user: null, transport: 'test', encoder: { name: 't', encode: (e) => e }, deliver: (_e, ev) => { got.push(ev) } })
  return got
}

async function start (t: Test, fake: FakeSslcommerz, env: Record<string, string> = {}) {
  const built = await buildTestApp({
    GATEWAYS: 'sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID, SSLCOMMERZ_STORE_PASSWORD: STORE_PASSWORD, SSLCOMMERZ_API_URL: fake.baseUrl, ...env
  })
  t.after(() => built.app.close())
  const post = (url: string, fields: Record<string, string>) => built.app.inject({
    method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: formBody(fields)
  })
  return { ...built, post }
}

t.test('GATEWAYS=sslcommerz: an IPN is validated and published; the return routes redirect to the SSLCOMMERZ_*_URLs', async (t) => {
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const { app, post, logs } = await start(t, fake, { SSLCOMMERZ_SUCCESS_URL: '/done', SSLCOMMERZ_CANCEL_URL: 'https://shop.example.com/cart' })
  const room = listen(app.rooms, 'sslcommerz')
  const user = listen(app.rooms, 'user:u1')
  const { fields } = fake.pay({ values: { value_a: 'u1' } })
  t.same((await post('/webhooks/sslcommerz', fields)).json(), { received: true })
  t.same((await post('/webhooks/sslcommerz', fields)).json(), { received: true, duplicate: true })
  t.same(room.map((e) => e.event), ['sslcommerz.valid'])
  t.same(user.map((e) => e.event), ['sslcommerz.valid'])
  t.equal((await post('/webhooks/sslcommerz', sign(fields, 'wrong'))).statusCode, 400)
  t.equal((await post('/payments/sslcommerz/success', fields)).headers.location, '/done')
  t.equal((await post('/payments/sslcommerz/fail', sign(unpaidFields('T', 'FAILED')))).headers.location, '/?payment=fail', 'the default')
  t.equal((await post('/payments/sslcommerz/cancel', sign(unpaidFields('T', 'CANCELLED')))).headers.location, 'https://shop.example.com/cart')
  t.equal((await app.inject('/demo/sslcommerz')).statusCode, 404, 'no demo checkout without the ws gateway (and its demo page)')
  for (const secret of [STORE_PASSWORD, md5(STORE_PASSWORD), fields.verify_sign]) t.notOk(logs.text().includes(secret), 'no secret in the logs')
})

t.test('PUBLIC_URL fills the return and IPN URLs of sessions; SSLCOMMERZ_LIVE picks the live API', async (t) => {
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const { app } = await start(t, fake, { PUBLIC_URL: 'https://api.shop.example/' })
  await app.sslcommerz.createSession({ tranId: 'O1', amount: 100, product: { name: 'p', category: 'c' }, customer: { name: 'n', email: 'n@example.com', phone: '1', address: 'a', city: 'c' } })
  t.match(fake.requests[0].form, {
    success_url: 'https://api.shop.example/payments/sslcommerz/success',
    fail_url: 'https://api.shop.example/payments/sslcommerz/fail',
    cancel_url: 'https://api.shop.example/payments/sslcommerz/cancel',
    ipn_url: 'https://api.shop.example/webhooks/sslcommerz'
  })
  const live = await buildTestApp({ GATEWAYS: 'sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID, SSLCOMMERZ_STORE_PASSWORD: STORE_PASSWORD, SSLCOMMERZ_LIVE: 'true' })
  t.after(() => live.app.close())
  t.equal(live.app.sslcommerz.baseUrl, 'https://securepay.sslcommerz.com')
  const sandbox = await buildTestApp({ GATEWAYS: 'sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID, SSLCOMMERZ_STORE_PASSWORD: STORE_PASSWORD })
  t.after(() => sandbox.app.close())
  t.equal(sandbox.app.sslcommerz.baseUrl, 'https://sandbox.sslcommerz.com')
})

t.test('the sslcommerz gateway cannot start without its credentials; errors name the variable, never the password', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'sslcommerz' }), new ConfigError('SSLCOMMERZ_STORE_ID', 'is required by the sslcommerz gateway'))
  t.throws(() => loadConfig({ GATEWAYS: 'sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID }), new ConfigError('SSLCOMMERZ_STORE_PASSWORD', 'is required by the sslcommerz gateway'))
  const base = { GATEWAYS: 'sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID, SSLCOMMERZ_STORE_PASSWORD: 'pw-secret-1' }
  for (const [variable, value] of [['SSLCOMMERZ_SUCCESS_URL', 'javascript:alert(1)'], ['SSLCOMMERZ_FAIL_URL', '//evil.example'], ['SSLCOMMERZ_API_URL', 'ftp://x'], ['SSLCOMMERZ_LIVE', 'yes']]) {
    const err = (() => { try { loadConfig({ ...base, [variable]: value }) } catch (e) { return e as ConfigError } })()
    t.equal(err?.variable, variable)
    t.notMatch(err?.message ?? '', /pw-secret-1/)
  }
})

t.test('with REDIS_URL, two instances handle one IPN once: the other delivery is a duplicate', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const a = await start(t, fake, { REDIS_URL: redis.url, REDIS_PREFIX: 'sslcz-test' })
  const b = await start(t, fake, { REDIS_URL: redis.url, REDIS_PREFIX: 'sslcz-test' })
  for (const { app } of [a, b]) await until(async () => (await app.inject('/ready')).statusCode === 200, 10_000, 'the instance to be ready')
  const { fields } = fake.pay()
  const answers = await Promise.all([a.post('/webhooks/sslcommerz', fields), b.post('/webhooks/sslcommerz', fields)])
  t.same(answers.map((res) => res.statusCode), [200, 200])
  t.same(answers.map((res) => res.json()).sort((x, y) => Object.keys(x).length - Object.keys(y).length),
    [{ received: true }, { received: true, duplicate: true }])
  t.same((await a.post('/payments/sslcommerz/success', fields)).headers.location, '/?payment=success', 'the browser\'s return is a duplicate too')
})

t.test('the demo checkout (ws and sandbox only): a session on this origin, and only demo payments reach the public demo room', async (t) => {
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const { app, post } = await start(t, fake, { GATEWAYS: 'ws,sslcommerz' })
  t.same((await app.inject('/demo/sslcommerz')).json(), { room: 'public:demo-payments' })
  const demoRoom = listen(app.rooms, 'public:demo-payments')
  const res = await app.inject({ method: 'POST', url: '/demo/sslcommerz/checkout', headers: { host: 'shop.test:8080' } })
  t.equal(res.statusCode, 200)
  const checkout = res.json() as { url: string, tranId: string, room: string, since: string }
  t.match(checkout, { url: new RegExp(`^${fake.baseUrl}/EasyCheckOut/`), tranId: /^demo-[0-9a-f]{16}$/, room: 'public:demo-payments' })
  t.equal(demoRoom[0].id, checkout.since, 'since is the id of the marker event published at checkout')
  t.match(fake.requests[0].form, {
    tran_id: checkout.tranId, total_amount: '100.00', success_url: 'http://shop.test:8080/payments/sslcommerz/success', ipn_url: 'http://shop.test:8080/webhooks/sslcommerz'
  })
  const paid = fake.complete(checkout.url.split('/').at(-1) as string, 'success')
  t.equal((await post('/webhooks/sslcommerz', paid.fields)).statusCode, 200)
  t.equal((await post('/webhooks/sslcommerz', fake.pay({ tran_id: 'ORDER-REAL' }).fields)).statusCode, 200)
  t.same(demoRoom.map((e) => e.event), ['demo.checkout', 'sslcommerz.valid'], 'the real order stays out of the public room')
  t.match(demoRoom[1].data, { tran_id: checkout.tranId, status: 'VALID' })

  const live = await start(t, fake, { GATEWAYS: 'ws,sslcommerz', SSLCOMMERZ_LIVE: 'true' })
  t.equal((await live.app.inject('/demo/sslcommerz')).statusCode, 404, 'never with the live API')
})
