import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildTestApp } from './helpers/app.js'
import { loadConfig, ConfigError } from '../lib/config.js'
import type { Member, RoomEvent } from '../lib/rooms/types.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { startRedis, until } from './helpers/redis.js'
import { WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, checkoutSession, eventPayload, sign } from './helpers/fake-stripe.js'

const ENV = { GATEWAYS: 'stripe', STRIPE_WEBHOOK_SECRET: `${OLD_WEBHOOK_SECRET},${WEBHOOK_SECRET}` }

function listen (rooms: RoomRegistry, room: string): RoomEvent[] {
  const got: RoomEvent[] = []
  const member: Member = {
    id: rooms.nextMemberId(), user: null, transport: 'test', encoder: { name: 'test', encode: (e) => e }, deliver: (_encoded, event) => { got.push(event) }
  }
  rooms.join(room, member)
  return got
}

async function start (t: { after: (fn: () => unknown) => void }, env: Record<string, string> = {}) {
  const built = await buildTestApp({ ...ENV, ...env })
  t.after(() => built.app.close())
  return built
}

function deliver (app: Awaited<ReturnType<typeof buildTestApp>>['app'], payload: string, header: string) {
  return app.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': header }, payload })
}

t.test('server.ts publishes a verified event as stripe.<type> to room stripe and to user:<client_reference_id>', async (t) => {
  const { app } = await start(t)
  const inStripe = listen(app.rooms, 'stripe')
  const inUser = listen(app.rooms, 'user:42')
  const other = listen(app.rooms, 'user:43')
  const session = checkoutSession({ client_reference_id: '42' })
  const payload = eventPayload('checkout.session.completed', session)
  const res = await deliver(app, payload, sign(payload))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { received: true })
  t.equal(inStripe.length, 1)
  t.equal(inStripe[0].event, 'stripe.checkout.session.completed')
  t.same(inStripe[0].data, session, 'the data is the event\'s data.object')
  t.equal(inUser.length, 1)
  t.equal(inUser[0].event, 'stripe.checkout.session.completed')
  t.same(inUser[0].data, session)
  t.equal(other.length, 0)
})

t.test('metadata.userId names the user room (and wins over client_reference_id)', async (t) => {
  const { app } = await start(t)
  const inUser = listen(app.rooms, 'user:u-7')
  const inRef = listen(app.rooms, 'user:order-1')
  const payload = eventPayload('payment_intent.succeeded', { id: 'pi_1', object: 'payment_intent', metadata: { userId: 'u-7' }, client_reference_id: 'order-1' })
  t.equal((await deliver(app, payload, sign(payload, OLD_WEBHOOK_SECRET))).statusCode, 200, 'either configured secret verifies')
  t.equal(inUser.length, 1)
  t.equal(inUser[0].event, 'stripe.payment_intent.succeeded')
  t.equal(inRef.length, 0)
})

t.test('an event without a user goes to room stripe only; a user id that is no room name is skipped with a warning', async (t) => {
  const { app, logs } = await start(t)
  const inStripe = listen(app.rooms, 'stripe')
  const plain = eventPayload('invoice.paid', { id: 'in_1', object: 'invoice', metadata: {} })
  t.equal((await deliver(app, plain, sign(plain))).statusCode, 200)
  const illegal = eventPayload('checkout.session.completed', checkoutSession({ client_reference_id: 'not a room name' }))
  t.equal((await deliver(app, illegal, sign(illegal))).statusCode, 200)
  t.same(inStripe.map((e) => e.event), ['stripe.invoice.paid', 'stripe.checkout.session.completed'])
  t.match(logs.text(), /not a legal room name: user room skipped/)
  t.same(await app.rooms.list(), [{ room: 'stripe', members: 1 }])
})

t.test('a duplicate delivery publishes nothing again', async (t) => {
  const { app } = await start(t)
  const inStripe = listen(app.rooms, 'stripe')
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_server_dup')
  await deliver(app, payload, sign(payload))
  const again = await deliver(app, payload, sign(payload))
  t.same(again.json(), { received: true, duplicate: true })
  t.equal(inStripe.length, 1)
})

t.test('a bad signature publishes nothing; the logs hold neither secrets nor signatures', async (t) => {
  const { app, logs } = await start(t)
  const inStripe = listen(app.rooms, 'stripe')
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  const forged = sign(payload, 'whsec_forger')
  const res = await deliver(app, payload, forged)
  t.equal(res.statusCode, 400)
  const good = sign(payload)
  t.equal((await deliver(app, payload, good)).statusCode, 200)
  t.equal(inStripe.length, 1)
  const text = logs.text()
  t.match(text, /stripe webhook refused/)
  for (const secret of [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, 'whsec_forger']) t.notOk(text.includes(secret), 'no secret')
  for (const header of [forged, good]) t.notOk(text.includes(header.split('v1=')[1]), 'no signature')
})

t.test('over real HTTP, with STRIPE_BODY_LIMIT applied', async (t) => {
  const { app } = await start(t, { STRIPE_BODY_LIMIT: '2048' })
  const inUser = listen(app.rooms, 'user:http')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const post = (payload: string) => fetch(`http://127.0.0.1:${port}/webhooks/stripe`, {
    method: 'POST', body: payload, headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload) }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession({ client_reference_id: 'http' }))
  const res = await post(payload)
  t.equal(res.status, 200)
  t.same(await res.json(), { received: true })
  t.equal(inUser.length, 1)
  const big = eventPayload('checkout.session.completed', checkoutSession({ description: 'x'.repeat(4096) }))
  t.equal((await post(big)).status, 413)
})

t.test('the stripe gateway cannot start without a whsec_ secret, and the error does not echo it', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'stripe' }), new ConfigError('STRIPE_WEBHOOK_SECRET', 'is required by the stripe gateway'))
  const err = (() => { try { loadConfig({ GATEWAYS: 'stripe', STRIPE_WEBHOOK_SECRET: 'sk_live_oops' }) } catch (e) { return e as Error } })()
  t.match(err, { variable: 'STRIPE_WEBHOOK_SECRET', message: /whsec_/ })
  t.notMatch(err?.message ?? '', /sk_live_oops/)
  t.throws(() => loadConfig({ ...ENV, STRIPE_HANDLER_TIMEOUT_MS: 'soon' }), new ConfigError('STRIPE_HANDLER_TIMEOUT_MS', 'must be a whole number'))
})

t.test('STRIPE_HANDLER_TIMEOUT_MS and STRIPE_SECRET_KEY reach the gateway', async (t) => {
  const { app, config } = await start(t, { STRIPE_HANDLER_TIMEOUT_MS: '2500', STRIPE_SECRET_KEY: 'sk_test_server' })
  t.equal(config.STRIPE_HANDLER_TIMEOUT_MS, 2500)
  t.equal(typeof app.stripe.customers.retrieve, 'function', 'app.stripe is a client with a secret key')
  const without = await start(t)
  t.throws(() => without.app.stripe, { code: 'GW_STRIPE_NO_CLIENT' }, 'without one, app.stripe says how to configure it')
})

t.test('with REDIS_URL, two instances handle one event once: the other delivery is a duplicate', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const a = await start(t, { REDIS_URL: redis.url, REDIS_PREFIX: 'stripe-test' })
  const b = await start(t, { REDIS_URL: redis.url, REDIS_PREFIX: 'stripe-test' })
  for (const { app } of [a, b]) {
    await until(async () => (await app.inject('/ready')).statusCode === 200, 10_000, 'the instance to be ready (Redis connected)')
  }
  const seen: RoomEvent[] = []
  let sentinel: () => void = () => {}
  const sentinelSeen = new Promise<void>((resolve) => { sentinel = resolve })
  a.app.rooms.join('stripe', {
    id: a.app.rooms.nextMemberId(),
    user: null,
    transport: 'test',
    encoder: { name: 'test', encode: (e) => e },
    deliver: (_encoded, event) => { if (event.event === 'sentinel') sentinel(); else seen.push(event) }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_two_instances')
  const answers = await Promise.all([deliver(a.app, payload, sign(payload)), deliver(b.app, payload, sign(payload))])
  t.same(answers.map((res) => res.statusCode), [200, 200])
  t.same(answers.map((res) => res.json()).sort((x, y) => Object.keys(x).length - Object.keys(y).length),
    [{ received: true }, { received: true, duplicate: true }])
  // events of one room arrive in publish order: once the sentinel is in, any second publish would be too
  await a.app.rooms.publish('stripe', 'sentinel', null)
  await Promise.race([sentinelSeen, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('no sentinel within 10 s')), 10_000).unref())])
  t.equal(seen.length, 1, 'published once across both instances')
  t.equal(seen[0].event, 'stripe.checkout.session.completed')
})
