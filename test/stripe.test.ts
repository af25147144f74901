import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { request as httpRequest } from 'node:http'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import Stripe from 'stripe'
import { stripeGateway, type StripeGatewayOptions, type StripeHandlerContext } from '../plugins/stripe.js'
import {
  WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, SECRET_KEY, ObservedStore, checkoutSession, eventPayload, sign, signRotating,
  startFakeStripe
} from './helpers/fake-stripe.js'

const PATH = '/webhooks/stripe'
const nowS = () => Math.floor(Date.now() / 1000)

/** Every log line of an app, and a way to await one (bounded). */
function capture () {
  const lines: string[] = []
  const waiters: Array<{ re: RegExp, resolve: (line: string) => void }> = []
  const stream = new Writable({
    write (chunk, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line)
        for (const w of [...waiters]) {
          if (w.re.test(line)) {
            waiters.splice(waiters.indexOf(w), 1)
            w.resolve(line)
          }
        }
      }
      done()
    }
  })
  return {
    stream,
    lines,
    text: () => lines.join('\n'),
    waitFor: async (re: RegExp, timeoutMs = 5000): Promise<string> => {
      const seen = lines.find((line) => re.test(line))
      if (seen !== undefined) return seen
      return await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log line matching ${re} within ${timeoutMs} ms`)), timeoutMs)
        waiters.push({ re, resolve: (line) => { clearTimeout(timer); resolve(line) } })
      })
    }
  }
}

interface Test { after: (fn: () => unknown) => void }

async function build (t: Test, options: Partial<StripeGatewayOptions> = {}, setup?: (app: FastifyInstance) => void) {
  const logs = capture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.after(() => app.close())
  setup?.(app)
  await app.register(stripeGateway, { webhookSecret: WEBHOOK_SECRET, ...options })
  return { app, logs }
}

function deliver (app: FastifyInstance, payload: string, header?: string | string[], headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: PATH,
    headers: { 'content-type': 'application/json; charset=utf-8', ...(header === undefined ? {} : { 'stripe-signature': header }), ...headers },
    payload
  })
}

t.test('a correctly signed event answers {"received":true} and runs its typed handler with the event', async (t) => {
  const seen: Array<{ id: string, ref: string | null, ctx: StripeHandlerContext }> = []
  const { app } = await build(t, {
    on: {
      'checkout.session.completed': async (event, ctx) => {
        // the event is narrowed from stripe's own union: data.object is a Checkout.Session
        const session: Stripe.Checkout.Session = event.data.object
        // @ts-expect-error a Checkout.Session has no amount_captured (a Charge field)
        void event.data.object.amount_captured
        seen.push({ id: event.id, ref: session.client_reference_id, ctx })
      }
    }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession({ client_reference_id: 'u42' }), 'evt_good')
  const res = await deliver(app, payload, sign(payload))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { received: true })
  t.equal(seen.length, 1)
  t.equal(seen[0].id, 'evt_good')
  t.equal(seen[0].ref, 'u42')
  t.equal(seen[0].ctx.rooms, app.rooms, 'ctx.rooms is the shared registry')
  t.equal(seen[0].ctx.request.url, PATH)
  t.equal(seen[0].ctx.signal.aborted, false)
})

t.test('the catch-all handler runs for every event, after the typed one', async (t) => {
  const calls: string[] = []
  const { app } = await build(t, {
    on: {
      'charge.succeeded': (event) => { calls.push(`typed:${event.data.object.object}`) },
      '*': (event) => { calls.push(`all:${event.type}`) }
    }
  })
  const charge = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
  const refund = eventPayload('refund.created', { id: 're_1', object: 'refund' })
  t.equal((await deliver(app, charge, sign(charge))).statusCode, 200)
  t.equal((await deliver(app, refund, sign(refund))).statusCode, 200)
  t.same(calls, ['typed:charge', 'all:charge.succeeded', 'all:refund.created'])
})

t.test('an event with no handler is acknowledged', async (t) => {
  const { app } = await build(t)
  const payload = eventPayload('customer.created', { id: 'cus_1', object: 'customer' })
  const res = await deliver(app, payload, sign(payload))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { received: true })
})

t.test('signature problems answer 400 with a short reason and run nothing', async (t) => {
  let runs = 0
  const { app } = await build(t, { on: { '*': () => { runs++ } } })
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  const cases: Array<[string, string | string[] | undefined, RegExp]> = [
    ['a bad signature', sign(payload, 'whsec_notthisendpoint'), /no signature matches/],
    ['no header', undefined, /missing Stripe-Signature header/],
    ['a garbage header', 'this is not a stripe signature', /malformed Stripe-Signature header/],
    ['a stale timestamp', sign(payload, WEBHOOK_SECRET, nowS() - 301 - 5), /outside the tolerance/],
    ['two Stripe-Signature headers', [sign(payload), sign(payload)], /more than one Stripe-Signature header/]
  ]
  for (const [name, header, reason] of cases) {
    const res = await deliver(app, payload, header)
    t.equal(res.statusCode, 400, name)
    const body = res.json()
    t.match(body, { statusCode: 400, code: 'GW_STRIPE_SIGNATURE', error: 'Bad Request', message: reason }, name)
    t.notMatch(res.body, /whsec_|secret/i, `${name}: nothing about secrets`)
  }
  t.equal(runs, 0)
})

t.test('a re-serialised body fails verification (the raw bytes are what is signed)', async (t) => {
  const { app } = await build(t)
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  const res = await deliver(app, JSON.stringify(JSON.parse(payload)), sign(payload))
  t.equal(res.statusCode, 400)
  t.match(res.json(), { message: /no signature matches/ })
})

t.test('a rotated secret: a header with two v1 signatures, and a list of secrets', async (t) => {
  const onlyNew = await build(t)
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  const res = await deliver(onlyNew.app, payload, signRotating(payload, [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET]))
  t.equal(res.statusCode, 200, 'two signatures, the new secret configured')

  const both = await build(t, { webhookSecret: [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET] })
  const p1 = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
  const p2 = eventPayload('charge.succeeded', { id: 'ch_2', object: 'charge' })
  t.equal((await deliver(both.app, p1, sign(p1, OLD_WEBHOOK_SECRET))).statusCode, 200, 'signed with the old secret')
  t.equal((await deliver(both.app, p2, sign(p2, WEBHOOK_SECRET))).statusCode, 200, 'signed with the new secret')
  const p3 = eventPayload('charge.succeeded', { id: 'ch_3', object: 'charge' })
  t.equal((await deliver(both.app, p3, sign(p3, 'whsec_neither'))).statusCode, 400, 'signed with neither')
})

t.test('a signed body that is not a Stripe event answers 400 GW_STRIPE_EVENT', async (t) => {
  const { app } = await build(t)
  const res = await deliver(app, 'not json at all', sign('not json at all'))
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'GW_STRIPE_EVENT', message: /not JSON/ })
  const shapeless = '{"id":"evt_x","type":"charge.succeeded"}'
  t.match((await deliver(app, shapeless, sign(shapeless))).json(), { statusCode: 400, code: 'GW_STRIPE_EVENT' })
})

t.test('a repeated event id answers {"received":true,"duplicate":true} and runs nothing', async (t) => {
  let runs = 0
  const { app } = await build(t, { on: { 'checkout.session.completed': () => { runs++ } } })
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_dup')
  t.same((await deliver(app, payload, sign(payload))).json(), { received: true })
  const again = await deliver(app, payload, sign(payload))
  t.equal(again.statusCode, 200)
  t.same(again.json(), { received: true, duplicate: true })
  t.equal(runs, 1)
})

t.test('two concurrent deliveries of one event run the handler once', async (t) => {
  const store = new ObservedStore()
  let runs = 0
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const { app } = await build(t, { store, on: { '*': async () => { runs++; await gate } } })
  await app.ready()
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_concurrent')
  const first = deliver(app, payload, sign(payload))
  const second = deliver(app, payload, sign(payload))
  await store.waiting
  open()
  const answers = (await Promise.all([first, second])).map((res) => res.json())
  t.same(answers.sort((a, b) => Object.keys(a).length - Object.keys(b).length), [{ received: true }, { received: true, duplicate: true }])
  t.equal(runs, 1)
})

t.test('a concurrent delivery of an event whose first delivery fails answers 500', async (t) => {
  const store = new ObservedStore()
  let fail: (err: Error) => void = () => {}
  let runs = 0
  const { app } = await build(t, {
    store,
    on: { '*': async () => { if (++runs === 1) await new Promise<void>((_resolve, reject) => { fail = reject }) } }
  })
  await app.ready()
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_concurrent_fail')
  const first = deliver(app, payload, sign(payload))
  const second = deliver(app, payload, sign(payload))
  await store.waiting
  fail(new Error('database down'))
  const [a, b] = await Promise.all([first, second])
  t.equal(a.statusCode, 500)
  t.match(b.json(), { statusCode: 500, code: 'GW_STRIPE_IN_FLIGHT' })
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 200, 'Stripe\'s retry runs it')
  t.equal(runs, 2)
})

t.test('a handler that throws answers 500, is not recorded, and the retry succeeds', async (t) => {
  let runs = 0
  const { app, logs } = await build(t, {
    on: { 'checkout.session.completed': async () => { if (++runs === 1) throw new Error('database down') } }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_fail_once')
  const failed = await deliver(app, payload, sign(payload))
  t.equal(failed.statusCode, 500)
  t.same(failed.json(), {
    statusCode: 500, code: 'GW_STRIPE_HANDLER', error: 'Internal Server Error', message: 'the handler of event checkout.session.completed failed'
  })
  t.notMatch(failed.body, /database down/, 'the handler\'s error stays in the logs')
  t.match(await logs.waitFor(/stripe event handler failed/), /database down/)
  const retry = await deliver(app, payload, sign(payload))
  t.equal(retry.statusCode, 200)
  t.same(retry.json(), { received: true })
  t.equal(runs, 2)
  t.same((await deliver(app, payload, sign(payload))).json(), { received: true, duplicate: true })
})

t.test('a handler past its time budget answers 500 and logs; the id is released for the retry', async (t) => {
  let runs = 0
  let aborted: unknown
  const { app, logs } = await build(t, {
    handlerTimeoutMs: 50,
    on: {
      '*': async (_event, ctx) => {
        if (++runs > 1) return
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        aborted = ctx.signal.reason
      }
    }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_slow')
  const res = await deliver(app, payload, sign(payload))
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 'GW_STRIPE_TIMEOUT', message: /50 ms budget/ })
  t.match(await logs.waitFor(/ran past its time budget/), /"budgetMs":50/)
  await logs.waitFor(/finished after its time budget/)
  t.match(aborted, { code: 'GW_STRIPE_TIMEOUT' }, 'ctx.signal told the handler')
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 200)
  t.equal(runs, 2)
})

t.test('a handler failing after its time budget is logged', async (t) => {
  const { app, logs } = await build(t, {
    handlerTimeoutMs: 20,
    on: { '*': async (_event, ctx) => { await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)); throw new Error('late failure') } }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 500)
  t.match(await logs.waitFor(/failed after its time budget/), /late failure/)
})

t.test('a host JSON route on the same app still gets parsed objects', async (t) => {
  const { app } = await build(t, {}, (host) => {
    host.post('/host/before', async (request) => ({ kind: Buffer.isBuffer(request.body) ? 'buffer' : typeof request.body, body: request.body }))
  })
  app.post('/host/after', async (request) => ({ kind: Buffer.isBuffer(request.body) ? 'buffer' : typeof request.body, body: request.body }))
  app.post('/host/text', async (request) => ({ kind: typeof request.body }))
  for (const url of ['/host/before', '/host/after']) {
    const res = await app.inject({ method: 'POST', url, payload: { hello: 'world' } })
    t.same(res.json(), { kind: 'object', body: { hello: 'world' } }, url)
  }
  t.same((await app.inject({ method: 'POST', url: '/host/text', headers: { 'content-type': 'text/plain' }, payload: 'hi' })).json(), { kind: 'string' })
  t.equal((await app.inject({ method: 'POST', url: '/host/after', headers: { 'content-type': 'application/json' }, payload: '{bad' })).statusCode, 400, 'the host keeps Fastify\'s JSON errors')
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 200, 'while the webhook gets its raw bytes')
})

t.test('any content type is verified over its raw bytes; an empty body is refused', async (t) => {
  const { app } = await build(t)
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await deliver(app, payload, sign(payload), { 'content-type': 'text/plain' })).statusCode, 200)
  const noType = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await app.inject({ method: 'POST', url: PATH, headers: { 'stripe-signature': sign(noType) }, payload: noType })).statusCode, 200, 'no content type')
  const bare = await app.inject({ method: 'POST', url: PATH, headers: { 'stripe-signature': sign(payload) } })
  t.equal(bare.statusCode, 400)
  t.match(bare.json(), { code: 'GW_STRIPE_SIGNATURE', message: /no signature matches/ })
  const signedEmpty = await app.inject({ method: 'POST', url: PATH, headers: { 'stripe-signature': sign('') } })
  t.match(signedEmpty.json(), { statusCode: 400, code: 'GW_STRIPE_EVENT' }, 'an empty body, even signed, is no event')
})

t.test('a body over bodyLimit answers 413', async (t) => {
  const { app } = await build(t, { bodyLimit: 1024 })
  const payload = eventPayload('checkout.session.completed', checkoutSession({ description: 'x'.repeat(2048) }))
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 413)
  const small = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await deliver(app, small, sign(small))).statusCode, 200)
})

t.test('the path is an option', async (t) => {
  const { app } = await build(t, { path: '/hooks/payments' })
  const payload = eventPayload('checkout.session.completed', checkoutSession())
  const res = await app.inject({ method: 'POST', url: '/hooks/payments', headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload) }, payload })
  t.equal(res.statusCode, 200)
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 404)
})

t.test('secrets, keys and signatures never reach the logs', async (t) => {
  const fake = await startFakeStripe({})
  t.after(() => fake.close())
  const { app, logs } = await build(t, {
    webhookSecret: [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET],
    secretKey: SECRET_KEY,
    clientOptions: fake.clientOptions,
    on: {
      'checkout.session.completed': async (event, ctx) => { await ctx.stripe.customers.retrieve('cus_missing') },
      'charge.failed': () => { throw new Error('handler failure') }
    }
  })
  const headers: string[] = []
  const send = async (payload: string, header: string) => { headers.push(header); return await deliver(app, payload, header) }
  const good = eventPayload('customer.created', { id: 'cus_1', object: 'customer' }, 'evt_logs_good')
  await send(good, sign(good))
  await send(good, sign(good))
  await send(good, sign(good, 'whsec_attacker'))
  await send(good, sign(good, WEBHOOK_SECRET, nowS() - 1000))
  await send(good, 'garbage')
  const failing = eventPayload('charge.failed', { id: 'ch_1', object: 'charge' })
  await send(failing, sign(failing))
  const apiError = eventPayload('checkout.session.completed', checkoutSession())
  t.equal((await send(apiError, sign(apiError))).statusCode, 500, 'a Stripe API error in a handler is a handler failure')
  t.match(await logs.waitFor(/"type":"checkout.session.completed".*stripe event handler failed/), /Unrecognized request URL/, 'the API error is logged')
  const text = logs.text()
  t.match(text, /stripe webhook refused/)
  for (const secret of [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, SECRET_KEY, 'whsec_attacker']) t.notOk(text.includes(secret), 'no secret or key')
  for (const header of headers) {
    for (const part of header.split(',')) if (part.startsWith('v1=')) t.notOk(text.includes(part.slice(3)), 'no signature')
  }
})

t.test('over real HTTP', async (t) => {
  let runs = 0
  const { app } = await build(t, { on: { '*': () => { runs++ } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}${PATH}`
  const post = async (payload: string, signature?: string) => {
    const res = await fetch(url, {
      method: 'POST', body: payload, headers: { 'content-type': 'application/json', ...(signature === undefined ? {} : { 'stripe-signature': signature }) }
    })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_http')
  t.same(await post(payload, sign(payload)), { status: 200, body: { received: true } }, 'good')
  t.same(await post(payload, sign(payload)), { status: 200, body: { received: true, duplicate: true } }, 'duplicate')
  t.match(await post(payload, sign(payload, 'whsec_wrong')), { status: 400, body: { message: /no signature matches/ } }, 'bad')
  t.match(await post(payload), { status: 400, body: { message: /missing/ } }, 'missing')
  t.match(await post(payload, 'garbage'), { status: 400, body: { message: /malformed/ } }, 'garbage')
  t.match(await post(payload, sign(payload, WEBHOOK_SECRET, nowS() - 600)), { status: 400, body: { message: /tolerance/ } }, 'stale')
  t.match(await post(JSON.stringify(JSON.parse(payload)), sign(payload)), { status: 400 }, 're-serialised')
  t.equal(runs, 1)

  // two header lines: Node joins them into one string; the raw header list still shows both
  const fresh = eventPayload('checkout.session.completed', checkoutSession(), 'evt_http_two_headers')
  const twoHeaders = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': [sign(fresh), sign(fresh)] } }, (res) => {
      let body = ''
      res.on('data', (chunk) => { body += String(chunk) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end(fresh)
  })
  t.equal(twoHeaders.status, 400)
  t.match(JSON.parse(twoHeaders.body), { message: /more than one/ })
})

t.test('the Stripe client: ctx.stripe and app.stripe reach the API (a local fake) with the secret key', async (t) => {
  const fake = await startFakeStripe({
    'GET /v1/checkout/sessions/cs_items/line_items': () => ({
      body: {
        object: 'list',
        url: '/v1/checkout/sessions/cs_items/line_items',
        has_more: false,
        data: [{ id: 'li_1', object: 'item', description: 'T-shirt', quantity: 2, amount_total: 4000, currency: 'eur' }]
      }
    }),
    'GET /v1/customers/cus_1': () => ({ body: { id: 'cus_1', object: 'customer', email: 'a@example.com' } })
  })
  t.after(() => fake.close())
  const items: Stripe.LineItem[] = []
  const { app } = await build(t, {
    secretKey: SECRET_KEY,
    clientOptions: fake.clientOptions,
    on: {
      'checkout.session.completed': async (event, ctx) => {
        const list = await ctx.stripe.checkout.sessions.listLineItems(event.data.object.id, { limit: 10 })
        items.push(...list.data)
      }
    }
  })
  const payload = eventPayload('checkout.session.completed', checkoutSession({ id: 'cs_items' }))
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 200)
  t.equal(items.length, 1)
  t.equal(items[0].description, 'T-shirt')
  t.equal(fake.requests[0].path, '/v1/checkout/sessions/cs_items/line_items')
  t.equal(fake.requests[0].query.get('limit'), '10')
  t.equal(fake.requests[0].headers.authorization, `Bearer ${SECRET_KEY}`)
  t.match(fake.requests[0].headers['user-agent'], /fastify-gateways/, 'appInfo names the plugin')

  t.ok(app.stripe instanceof Stripe, 'app.stripe is decorated')
  const customer = await app.stripe.customers.retrieve('cus_1')
  t.equal((customer as Stripe.Customer).email, 'a@example.com')
})

t.test('a given client is used as is, and decorate: false leaves app.stripe alone', async (t) => {
  const fake = await startFakeStripe({ 'GET /v1/customers/cus_2': () => ({ body: { id: 'cus_2', object: 'customer' } }) })
  t.after(() => fake.close())
  const client = new Stripe(SECRET_KEY, fake.clientOptions)
  let used: Stripe | undefined
  const { app } = await build(t, { client, on: { '*': (_event, ctx) => { used = ctx.stripe } } })
  // a second endpoint (another Stripe account) next to it, on its own path and secret
  await app.register(stripeGateway, { path: '/webhooks/stripe-connect', webhookSecret: OLD_WEBHOOK_SECRET, secretKey: SECRET_KEY, decorate: false })
  t.equal(app.stripe, client)
  const payload = eventPayload('customer.created', { id: 'cus_2', object: 'customer' })
  await deliver(app, payload, sign(payload))
  t.equal(used, client)
  const connect = await app.inject({ method: 'POST', url: '/webhooks/stripe-connect', headers: { 'content-type': 'application/json', 'stripe-signature': sign(payload, OLD_WEBHOOK_SECRET) }, payload })
  t.equal(connect.statusCode, 200)
  t.equal(app.stripe, client)
})

t.test('without a client, app.stripe is there as its type says and reading it (or ctx.stripe) throws GW_STRIPE_NO_CLIENT', async (t) => {
  let thrown: unknown
  const { app } = await build(t, { on: { '*': (_event, ctx) => { try { return ctx.stripe } catch (err) { thrown = err; throw err } } } })
  t.equal(app.hasDecorator('stripe'), true)
  t.throws(() => app.stripe.customers, { code: 'GW_STRIPE_NO_CLIENT', message: /pass secretKey or client \(STRIPE_SECRET_KEY\)/ })
  const payload = eventPayload('customer.created', { id: 'cus_1', object: 'customer' })
  t.equal((await deliver(app, payload, sign(payload))).statusCode, 500)
  t.match(thrown, { code: 'GW_STRIPE_NO_CLIENT' })
})

t.test('ctx.log is bound to the event', async (t) => {
  const { app, logs } = await build(t, { on: { '*': (_event, ctx) => { ctx.log.info('handling it') } } })
  const payload = eventPayload('customer.created', { id: 'cus_1', object: 'customer' }, 'evt_logged')
  await deliver(app, payload, sign(payload))
  const line = JSON.parse(await logs.waitFor(/handling it/))
  t.equal(line.stripeEvent, 'evt_logged')
  t.equal(line.stripeType, 'customer.created')
})

t.test('dedupe store failures: 500 before handling; a handled event whose record fails still answers 200', async (t) => {
  const store = new ObservedStore()
  let runs = 0
  const { app, logs } = await build(t, { store, on: { '*': () => { runs++ } } })
  const payload = eventPayload('customer.created', { id: 'cus_1', object: 'customer' })
  store.fail.claim = true
  const down = await deliver(app, payload, sign(payload))
  t.equal(down.statusCode, 500)
  t.match(down.json(), { code: 'GW_STRIPE_STORE' })
  t.equal(runs, 0)
  store.fail = { complete: true }
  t.same((await deliver(app, payload, sign(payload))).json(), { received: true })
  t.equal(runs, 1)
  await logs.waitFor(/could not record it/)
})

t.test('the plugin closes the store it created, not one it was given', async (t) => {
  const given = new ObservedStore()
  let closed = false
  given.close = async () => { closed = true }
  const { app } = await build(t, { store: given })
  await app.close()
  t.equal(closed, false)
})

t.test('options are validated at register time, naming the option and never echoing a secret', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no secret', {}, /webhookSecret/],
    ['an API key as the webhook secret', { webhookSecret: 'sk_live_abcdef' }, /webhookSecret.*whsec_/],
    ['an empty list', { webhookSecret: [] }, /webhookSecret/],
    ['a bad entry in a list', { webhookSecret: [WEBHOOK_SECRET, 'nope'] }, /webhookSecret/],
    ['an unknown option', { webhookSecret: WEBHOOK_SECRET, secret: 'x' }, /unknown option "secret"/],
    ['a handler that is not a function', { webhookSecret: WEBHOOK_SECRET, on: { 'charge.succeeded': 'yes' } }, /on\.charge\.succeeded: must be a function/],
    ['a bad store', { webhookSecret: WEBHOOK_SECRET, store: {} }, /store: must implement DedupeStore/],
    ['a bad secret key', { webhookSecret: WEBHOOK_SECRET, secretKey: 'pk_test_123' }, /secretKey/],
    ['client and secretKey', { webhookSecret: WEBHOOK_SECRET, secretKey: SECRET_KEY, client: new Stripe(SECRET_KEY) }, /client and secretKey are exclusive/],
    ['client and clientOptions', { webhookSecret: WEBHOOK_SECRET, client: new Stripe(SECRET_KEY), clientOptions: {} }, /clientOptions/],
    ['not a client', { webhookSecret: WEBHOOK_SECRET, client: {} }, /client: must be a Stripe client/],
    ['a path without /', { webhookSecret: WEBHOOK_SECRET, path: 'webhooks' }, /path: must start with \//],
    ['a zero budget', { webhookSecret: WEBHOOK_SECRET, handlerTimeoutMs: 0 }, /handlerTimeoutMs/]
  ]
  for (const [name, options, message] of cases) {
    const app = Fastify()
    t.after(() => app.close())
    const err = await (async () => { await app.register(stripeGateway, options as unknown as StripeGatewayOptions); await app.ready() })()
      .then(() => null, (e: Error) => e)
    t.match(err, { code: 'GW_INVALID_OPTIONS', message }, name)
    t.notMatch(err?.message ?? '', /sk_live_abcdef|pk_test_123|sk_test_/, `${name}: no secret in the message`)
  }
})

t.test('a second gateway that would decorate app.stripe again is refused', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(stripeGateway, { webhookSecret: WEBHOOK_SECRET, secretKey: SECRET_KEY })
  await t.rejects(async () => {
    await app.register(stripeGateway, { path: '/other', webhookSecret: WEBHOOK_SECRET, secretKey: SECRET_KEY })
    await app.ready()
  }, { code: 'GW_INVALID_OPTIONS', message: /already decorated.*decorate: false/ })
})

t.test('a Stripe-Signature dated more than 300 s in the future answers 400 and runs nothing (the SDK alone checks only age)', async (t) => {
  let runs = 0
  const { app, logs } = await build(t, { on: { '*': () => { runs++ } } })
  const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_future')
  const ahead = await deliver(app, payload, sign(payload, WEBHOOK_SECRET, nowS() + 301 + 5))
  t.equal(ahead.statusCode, 400)
  t.match(ahead.json(), { statusCode: 400, code: 'GW_STRIPE_SIGNATURE', message: /outside the tolerance/ })
  t.match(logs.text(), /"reason":"future".*stripe webhook refused/)
  t.equal((await deliver(app, payload, sign(payload, WEBHOOK_SECRET, nowS() + 200))).statusCode, 200, 'a clock a little ahead is fine')
  t.equal(runs, 1)
})

t.test('publish: true publishes each handled event as stripe.<type> to room stripe and the user room, once', async (t) => {
  const { app } = await build(t, { publish: true })
  const got: string[] = []
  for (const room of ['stripe', 'user:u9']) {
    app.rooms.join(room, { id: app.rooms.nextMemberId(), user: null, transport: 'test', encoder: { name: 't', encode: (e) => e }, deliver: (_e, ev) => { got.push(`${ev.room} ${ev.event}`) } })
  }
  const payload = eventPayload('checkout.session.completed', checkoutSession({ client_reference_id: 'u9' }), 'evt_publish')
  t.same((await deliver(app, payload, sign(payload))).json(), { received: true })
  t.same((await deliver(app, payload, sign(payload))).json(), { received: true, duplicate: true })
  t.same(got.sort(), ['stripe stripe.checkout.session.completed', 'user:u9 stripe.checkout.session.completed'])
})

t.test('every delivery is counted for metrics as handled, duplicate, rejected or failed', async (t) => {
  let runs = 0
  const { app } = await build(t, { on: { '*': () => { if (++runs === 1) throw new Error('once') } } })
  const payload = eventPayload('customer.created', { id: 'cus_1', object: 'customer' }, 'evt_counted')
  await deliver(app, payload, sign(payload))
  await deliver(app, payload, sign(payload))
  await deliver(app, payload, sign(payload))
  await deliver(app, payload, sign(payload, 'whsec_other'))
  t.same(app.rooms.counters.webhooks.stripe, { handled: 1, duplicate: 1, rejected: 1, failed: 1 })
})
