import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { sslcommerzGateway, type SslcommerzGatewayOptions, type SslcommerzHandlerContext } from '../plugins/sslcommerz.js'
import type { SslcommerzNotification } from '../lib/sslcommerz/schemas.js'
import type { RoomEvent } from '../lib/rooms/types.js'
import { loggerOptions } from '../lib/log.js'
import { GatewayErrors } from '../lib/errors.js'
import { logCapture } from './helpers/app.js'
import { ObservedStore } from './helpers/fake-stripe.js'
import { STORE_ID, STORE_PASSWORD, formBody, md5, sign, startFakeSslcommerz, unpaidFields, type FakeSslcommerz } from './helpers/fake-sslcommerz.js'

const IPN = '/webhooks/sslcommerz'
const PUBLIC = 'https://shop.example.com'

interface Seen { status: string, source: string, validation?: string, tranId: string }

async function setup (t: Test, options: Partial<SslcommerzGatewayOptions> = {}, fake?: FakeSslcommerz) {
  const sslc = fake ?? await startFakeSslcommerz()
  if (fake === undefined) t.after(() => sslc.close())
  const logs = logCapture()
  const app = Fastify({ logger: { ...loggerOptions('trace'), stream: logs.stream } as never })
  t.after(() => app.close())
  const seen: Seen[] = []
  const record = (n: SslcommerzNotification, ctx: SslcommerzHandlerContext) => {
    seen.push({ status: n.status, source: ctx.source, validation: ctx.validation?.status, tranId: n.tran_id })
  }
  await app.register(sslcommerzGateway, {
    storeId: STORE_ID,
    storePassword: STORE_PASSWORD,
    apiUrl: sslc.baseUrl,
    publicUrl: PUBLIC,
    on: { '*': record },
    ...options
  })
  await app.ready()
  const events: RoomEvent[] = []
  const listen = (room: string) => {
    app.rooms.join(room, { id: app.rooms.nextMemberId(), user: null, transport: 'test', encoder: { name: 't', encode: (e) => e }, deliver: (_e, ev) => { events.push(ev) } })
  }
  listen('sslcommerz')
  listen('user:buyer-7')
  const ipn = (fields: Record<string, string>, headers: Record<string, string> = {}) => app.inject({
    method: 'POST', url: IPN, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: formBody(fields)
  })
  return { app, fake: sslc, logs, seen, events, ipn }
}

t.test('a valid IPN is hash-checked, validated, handled once and published to sslcommerz and user:<value_a>', async (t) => {
  const valid: Array<{ n: SslcommerzNotification, ctx: SslcommerzHandlerContext }> = []
  const { fake, seen, events, ipn } = await setup(t, { on: { VALID: (n, ctx) => { valid.push({ n, ctx }) } } })
  const { tx, fields } = fake.pay({ amount: '1000', values: { value_a: 'buyer-7', value_b: 'order-1' } })
  const res = await ipn(fields)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { received: true })
  t.equal(valid.length, 1)
  t.equal(valid[0].n.tran_id, tx.tran_id)
  t.equal(valid[0].ctx.validation?.status, 'VALID', 'the typed VALID handler gets the validation answer')
  t.equal(valid[0].ctx.source, 'ipn')
  t.notOk('verify_sign' in valid[0].n, 'the signature itself is not handed on')
  t.equal(seen.length, 0, 'the catch-all was replaced by the options given')
  const [asked] = fake.validations()
  t.same(asked.query, { val_id: tx.val_id, store_id: STORE_ID, store_passwd: STORE_PASSWORD, v: '1', format: 'json' },
    'the validation API gets the val_id and the credentials (the password with & and # intact)')
  t.same(events.map((e) => `${e.room} ${e.event}`), ['sslcommerz sslcommerz.valid', 'user:buyer-7 sslcommerz.valid'])
  t.same(events[0].data, {
    tran_id: tx.tran_id, val_id: tx.val_id, amount: '1000', currency: 'BDT', status: 'VALID', card_type: 'VISA-Dutch Bangla',
    value_a: 'buyer-7', value_b: 'order-1'
  }, 'the listed fields, absent ones left out')
})

t.test('a bad verify_sign or missing verify_key fields answer 400; nothing is validated, run or published', async (t) => {
  const { app, fake, seen, events, ipn, logs } = await setup(t)
  const { fields } = fake.pay()
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a wrong password', sign(fields, 'not-the-password'), /verify_sign does not match/],
    ['a tampered amount', { ...fields, amount: '1.00' }, /verify_sign does not match/],
    ['an uppercase signature', { ...fields, verify_sign: fields.verify_sign.toUpperCase() }, /verify_sign does not match/],
    ['no verify_sign', { ...fields, verify_sign: '' }, /missing verify_sign or verify_key/],
    ['no verify_key', Object.fromEntries(Object.entries(fields).filter(([k]) => k !== 'verify_key')), /missing verify_sign or verify_key/],
    ['an unsigned value_a', { ...sign(Object.fromEntries(Object.entries(fields).filter(([k]) => !k.startsWith('verify')))), value_a: 'someone' }, /value_a is not covered by verify_sign/],
    ['a verify_key without the status', sign({ tran_id: 'T1', status: 'VALID', val_id: 'V1' }, STORE_PASSWORD, ['tran_id', 'val_id']), /status is not covered/]
  ]
  for (const [name, body, message] of cases) {
    const res = await ipn(body)
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, code: 'GW_SSLCOMMERZ_SIGNATURE', error: 'Bad Request', message }, name)
  }
  const signedButIncomplete = await ipn(sign({ status: 'VALID' }))
  t.match(signedButIncomplete.json(), { statusCode: 400, code: 'GW_SSLCOMMERZ_BAD_REQUEST', message: /tran_id/ }, 'missing fields')
  const noValId = await ipn(sign({ status: 'VALID', tran_id: 'T1', amount: '10.00', currency: 'BDT' }))
  t.match(noValId.json(), { statusCode: 400, code: 'GW_SSLCOMMERZ_BAD_REQUEST', message: /val_id is required with status VALID/ })
  const oddStatus = await ipn(sign({ status: 'valid; drop', tran_id: 'T1' }))
  t.match(oddStatus.json(), { statusCode: 400, code: 'GW_SSLCOMMERZ_BAD_REQUEST', message: /status/ })
  t.equal(fake.validations().length, 0, 'nothing unsigned reaches the validation API')
  t.equal(seen.length, 0)
  t.equal(events.length, 0)
  t.match(logs.text(), /"reason":"mismatch".*sslcommerz notification refused/)
  t.same(app.rooms.counters.webhooks.sslcommerz, { handled: 0, duplicate: 0, rejected: 10, failed: 0 })
})

t.test('a payment the validation API does not confirm answers 400 and publishes nothing', async (t) => {
  const { fake, seen, events, ipn } = await setup(t)
  const unknown = sign({ status: 'VALID', tran_id: 'T-UNKNOWN', val_id: 'V-NOT-THERE', amount: '100.00', currency: 'BDT' })
  const invalid = await ipn(unknown)
  t.equal(invalid.statusCode, 400)
  t.match(invalid.json(), { code: 'GW_SSLCOMMERZ_INVALID', message: /the validation API answered INVALID_TRANSACTION/ })

  const mismatches: Array<[string, Record<string, string>, RegExp]> = [
    ['amount', { amount: '999.00' }, /amount does not match/],
    ['currency', { currency: 'USD' }, /currency does not match/],
    ['tran_id', { tran_id: 'SOMETHING-ELSE' }, /tran_id does not match/],
    ['status', { status: 'FAILED' }, /answered FAILED/]
  ]
  for (const [what, answer, message] of mismatches) {
    const { tx, fields } = fake.pay()
    fake.control.tamper.set(tx.val_id, answer)
    const res = await ipn(fields)
    t.equal(res.statusCode, 400, what)
    t.match(res.json(), { code: 'GW_SSLCOMMERZ_INVALID', message }, what)
  }
  t.equal(seen.length, 0)
  t.equal(events.length, 0)
})

t.test('amounts compare as decimals to two places: "1000" equals "1000.00"', async (t) => {
  const { fake, seen, ipn } = await setup(t)
  const { tx, fields } = fake.pay({ amount: '1000' })
  fake.control.tamper.set(tx.val_id, { amount: '1000.00' })
  t.equal((await ipn(fields)).statusCode, 200)
  const other = fake.pay({ amount: '1000.5' })
  fake.control.tamper.set(other.tx.val_id, { amount: '1000.50' })
  t.equal((await ipn(other.fields)).statusCode, 200)
  t.equal(seen.length, 2)
})

t.test('with loadOrder, the host\'s order must exist and ask for what was paid, in the session\'s currency', async (t) => {
  const orders = new Map<string, { amount: string | number, currency?: string }>([
    ['ORDER-1', { amount: 1000 }],
    ['ORDER-2', { amount: '999.00' }],
    ['ORDER-3', { amount: '10.00', currency: 'USD' }],
    ['ORDER-4', { amount: '10.00', currency: 'EUR' }]
  ])
  let down = false
  const { fake, seen, ipn } = await setup(t, {
    loadOrder: async (tranId) => { if (down) throw new Error('orders db down'); return orders.get(tranId) ?? null }
  })
  t.equal((await ipn(fake.pay({ tran_id: 'ORDER-1', amount: '1000.00' }).fields)).statusCode, 200)
  const short = await ipn(fake.pay({ tran_id: 'ORDER-2', amount: '1000.00' }).fields)
  t.match(short.json(), { statusCode: 400, code: 'GW_SSLCOMMERZ_INVALID', message: /amount paid is not the order's/ })
  const unknown = await ipn(fake.pay({ tran_id: 'ORDER-9' }).fields)
  t.match(unknown.json(), { statusCode: 400, message: /no order "ORDER-9"/ })
  const converted = fake.pay({ tran_id: 'ORDER-3', amount: '1185.00', currency: 'BDT', currency_type: 'USD', currency_amount: '10.00' })
  t.equal((await ipn(converted.fields)).statusCode, 200, 'a USD order paid in BDT compares with currency_type/currency_amount')
  const otherCurrency = await ipn(fake.pay({ tran_id: 'ORDER-4', amount: '1185.00', currency: 'BDT', currency_type: 'USD', currency_amount: '10.00' }).fields)
  t.match(otherCurrency.json(), { statusCode: 400, message: /currency paid is not the order's/ })
  down = true
  const lookupDown = await ipn(fake.pay({ tran_id: 'ORDER-1' }).fields)
  t.equal(lookupDown.statusCode, 503)
  t.match(lookupDown.json(), { code: 'GW_SSLCOMMERZ_ORDER_LOOKUP' })
  t.equal(seen.length, 2)
})

t.test('a repeated IPN (same val_id) answers {"received":true,"duplicate":true} and runs nothing', async (t) => {
  const { app, fake, seen, events, ipn } = await setup(t)
  const { fields } = fake.pay()
  t.same((await ipn(fields)).json(), { received: true })
  const again = await ipn(fields)
  t.equal(again.statusCode, 200)
  t.same(again.json(), { received: true, duplicate: true })
  t.equal(seen.length, 1)
  t.equal(events.length, 1)
  t.same(app.rooms.counters.webhooks.sslcommerz, { handled: 1, duplicate: 1, rejected: 0, failed: 0 })
})

t.test('two concurrent deliveries of one IPN run the handler once: the second waits and is a duplicate', async (t) => {
  const store = new ObservedStore()
  let open: () => void = () => {}
  const held = new Promise<void>((resolve) => { open = resolve })
  let runs = 0
  const { fake, events, ipn } = await setup(t, { store, on: { VALID: async () => { runs++; await held } } })
  const { fields } = fake.pay()
  const first = ipn(fields)
  const second = ipn(fields)
  await store.waiting
  open()
  const answers = (await Promise.all([first, second])).map((res) => res.json())
  t.same(answers.sort((a, b) => Object.keys(a).length - Object.keys(b).length), [{ received: true }, { received: true, duplicate: true }])
  t.equal(runs, 1)
  t.equal(events.length, 1)
})

t.test('a handler that throws answers 500, publishes nothing and is not marked handled: the retry runs it', async (t) => {
  let runs = 0
  const { fake, events, ipn, logs } = await setup(t, { on: { VALID: () => { if (++runs === 1) throw new Error('orders db down') } } })
  const { fields } = fake.pay()
  const failed = await ipn(fields)
  t.equal(failed.statusCode, 500)
  t.match(failed.json(), { statusCode: 500, code: 'GW_SSLCOMMERZ_HANDLER', message: /not marked handled/ })
  t.notMatch(failed.body, /orders db down/)
  t.match(logs.text(), /orders db down/)
  t.equal(events.length, 0)
  t.same((await ipn(fields)).json(), { received: true })
  t.same((await ipn(fields)).json(), { received: true, duplicate: true })
  t.equal(runs, 2)
  t.equal(events.length, 1)
})

t.test('a handler past its budget answers 500 and is not marked handled', async (t) => {
  let runs = 0
  const { fake, ipn } = await setup(t, {
    handlerTimeoutMs: 30,
    on: { VALID: async (_n, ctx) => { if (++runs === 1) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) } }
  })
  const { fields } = fake.pay()
  const slow = await ipn(fields)
  t.equal(slow.statusCode, 500)
  t.match(slow.json(), { code: 'GW_SSLCOMMERZ_TIMEOUT' })
  t.same((await ipn(fields)).json(), { received: true })
})

t.test('a concurrent duplicate of an IPN whose handler fails answers 500 too', async (t) => {
  const store = new ObservedStore()
  let fail: (err: Error) => void = () => {}
  let runs = 0
  const { fake, ipn } = await setup(t, { store, on: { VALID: async () => { if (++runs === 1) await new Promise<void>((_resolve, reject) => { fail = reject }) } } })
  const { fields } = fake.pay()
  const first = ipn(fields)
  const second = ipn(fields)
  await store.waiting
  fail(new Error('down'))
  const [a, b] = await Promise.all([first, second])
  t.equal(a.statusCode, 500)
  t.match(b.json(), { statusCode: 500, code: 'GW_SSLCOMMERZ_IN_FLIGHT' })
  t.equal((await ipn(fields)).statusCode, 200)
})

t.test('FAILED and CANCELLED notifications are verified by hash only, handled as such and published', async (t) => {
  const failed: string[] = []
  const cancelled: string[] = []
  const { fake, events, ipn } = await setup(t, {
    on: { FAILED: (n, ctx) => { failed.push(`${n.tran_id} ${n.error} ${String(ctx.validation)}`) }, CANCELLED: (n) => { cancelled.push(n.tran_id) } }
  })
  const res = await ipn(sign(unpaidFields('ORDER-F', 'FAILED', { value_a: 'buyer-7' })))
  t.equal(res.statusCode, 200)
  t.same(failed, ['ORDER-F Declined by the issuer undefined'])
  t.equal((await ipn(sign(unpaidFields('ORDER-C', 'CANCELLED')))).statusCode, 200)
  t.same(cancelled, ['ORDER-C'])
  t.same((await ipn(sign(unpaidFields('ORDER-C', 'CANCELLED')))).json(), { received: true, duplicate: true }, 'deduplicated by tran_id and status')
  t.equal((await ipn(sign(unpaidFields('ORDER-C', 'EXPIRED')))).statusCode, 200, 'another status of the same tran_id is another notification')
  t.equal(fake.validations().length, 0, 'the validation API is not asked')
  t.same(events.map((e) => `${e.room} ${e.event}`), [
    'sslcommerz sslcommerz.failed', 'user:buyer-7 sslcommerz.failed', 'sslcommerz sslcommerz.cancelled', 'sslcommerz sslcommerz.expired'
  ])
  t.same(events[0].data, { tran_id: 'ORDER-F', amount: '100.00', currency: 'BDT', status: 'FAILED', value_a: 'buyer-7' }, 'empty val_id and card_type left out')
  t.equal((await ipn(sign(unpaidFields('ORDER-F', 'FAILED'), 'wrong'))).statusCode, 400, 'the hash is still checked')
})

t.test('a validation API that is down or slow answers 503: nothing published, nothing marked handled', async (t) => {
  const { app, fake, seen, events, ipn } = await setup(t, { apiTimeoutMs: 200 })
  const { fields } = fake.pay()
  fake.control.validation = 'down'
  const down = await ipn(fields)
  t.equal(down.statusCode, 503)
  t.match(down.json(), { statusCode: 503, code: 'GW_SSLCOMMERZ_UNAVAILABLE', message: /HTTP 500/ })
  fake.control.validation = 'hang'
  const slow = await ipn(fields)
  t.equal(slow.statusCode, 503)
  t.match(slow.json(), { message: /no answer within 200 ms/ })
  t.equal(seen.length, 0)
  t.equal(events.length, 0)
  fake.control.validation = 'up'
  t.same((await ipn(fields)).json(), { received: true }, 'SSLCommerz\'s retry is handled, not a duplicate')
  t.equal(events.length, 1)
  t.same(app.rooms.counters.webhooks.sslcommerz, { handled: 1, duplicate: 0, rejected: 0, failed: 2 })
})

t.test('an unreachable validation API answers 503 too', async (t) => {
  const fake = await startFakeSslcommerz()
  const { fields } = fake.pay()
  await fake.close()
  const { ipn } = await setup(t, {}, fake)
  const res = await ipn(fields)
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'GW_SSLCOMMERZ_UNAVAILABLE', message: /unreachable/ })
})

t.test('IPNs are forms: another content type is 415; the form parser stays inside the gateway', async (t) => {
  const { app, fake } = await setup(t)
  const { fields } = fake.pay()
  const json = await app.inject({ method: 'POST', url: IPN, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(fields) })
  t.equal(json.statusCode, 415)
  const none = await app.inject({ method: 'POST', url: IPN })
  t.equal(none.statusCode, 415)
  t.equal(none.json().code, 'GW_SSLCOMMERZ_MEDIA_TYPE')
  const big = await app.inject({ method: 'POST', url: IPN, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `a=${'x'.repeat(70_000)}` })
  t.equal(big.statusCode, 413)
})

t.test('the host keeps its own parsers', async (t) => {
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const app = Fastify()
  t.after(() => app.close())
  await app.register(sslcommerzGateway, { storeId: STORE_ID, storePassword: STORE_PASSWORD, apiUrl: fake.baseUrl })
  app.post('/host', async (request) => ({ got: request.body }))
  const json = await app.inject({ method: 'POST', url: '/host', payload: { a: 1 } })
  t.same(json.json(), { got: { a: 1 } })
  const form = await app.inject({ method: 'POST', url: '/host', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1' })
  t.equal(form.statusCode, 415, 'the host did not gain a form parser')
})

t.test('createSession opens a session with the parameters SSLCommerz requires and returns its GatewayPageURL', async (t) => {
  const { app, fake } = await setup(t)
  const url = await app.sslcommerz.createSession({
    tranId: 'ORDER-100',
    amount: 19.99 * 3,
    userId: 'buyer-7',
    valueB: 'cart-9',
    product: { name: 'T-shirt', category: 'clothing' },
    customer: { name: 'Rahim', email: 'rahim@example.com', phone: '01711111111', address: 'House 1, Road 2', city: 'Dhaka', postcode: '1207' },
    extra: { multi_card_name: 'visacard' }
  })
  t.match(url, new RegExp(`^${fake.baseUrl}/EasyCheckOut/[0-9A-F]{32}$`))
  const [request] = fake.requests.filter((r) => r.path === '/gwprocess/v4/api.php')
  t.same(request.query, {}, 'nothing in the URL: the credentials travel in the form body')
  t.match(request.form, {
    store_id: STORE_ID,
    store_passwd: STORE_PASSWORD,
    tran_id: 'ORDER-100',
    total_amount: '59.97',
    currency: 'BDT',
    success_url: `${PUBLIC}/payments/sslcommerz/success`,
    fail_url: `${PUBLIC}/payments/sslcommerz/fail`,
    cancel_url: `${PUBLIC}/payments/sslcommerz/cancel`,
    ipn_url: `${PUBLIC}/webhooks/sslcommerz`,
    value_a: 'buyer-7',
    value_b: 'cart-9',
    product_profile: 'general',
    cus_country: 'Bangladesh',
    shipping_method: 'NO',
    multi_card_name: 'visacard'
  })
  t.notOk('value_c' in request.form, 'absent parameters are not sent')

  const shipped = await app.sslcommerz.createSession({
    tranId: 'ORDER-101', amount: '500', currency: 'USD',
    product: { name: 'Lamp', category: 'home', profile: 'physical-goods' },
    customer: { name: 'Karim', email: 'k@example.com', phone: '01811111111', address: 'a', city: 'Chattogram', country: 'Bangladesh' },
    shipping: { method: 'Courier', items: 1, name: 'Karim', address: 'a', city: 'Chattogram', postcode: '4000' },
    successUrl: 'https://other.example.com/ok', ipnUrl: 'https://other.example.com/ipn'
  })
  t.ok(shipped.startsWith(fake.baseUrl))
  const second = fake.requests.filter((r) => r.path === '/gwprocess/v4/api.php')[1]
  t.match(second.form, { total_amount: '500.00', currency: 'USD', success_url: 'https://other.example.com/ok', ipn_url: 'https://other.example.com/ipn', num_of_item: '1', ship_postcode: '4000' })
})

t.test('createSession refuses bad input before any request, and reports SSLCommerz\'s refusal', async (t) => {
  const { app, fake } = await setup(t)
  const base = {
    tranId: 'ORDER-1', amount: 100, product: { name: 'p', category: 'c' },
    customer: { name: 'n', email: 'n@example.com', phone: '1', address: 'a', city: 'c' }
  }
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['three decimals', { amount: 10.005 }, /amount: must be a positive amount with at most two decimals/],
    ['zero', { amount: '0.00' }, /amount/],
    ['negative', { amount: -5 }, /amount/],
    ['long tran id', { tranId: 'x'.repeat(31) }, /tranId/],
    ['bad email', { customer: { ...base.customer, email: 'nope' } }, /customer.email/],
    ['a user id that makes no room', { userId: 'has space' }, /userId/],
    ['an unknown key', { colour: 'red' }, /Unrecognized key/],
    ['a relative success URL', { successUrl: '/ok' }, /successUrl/]
  ]
  for (const [name, change, message] of bad) {
    await t.rejects(app.sslcommerz.createSession({ ...base, ...change } as never), { code: 'GW_SSLCOMMERZ_INVALID_REQUEST', statusCode: 400, message }, name)
  }
  t.equal(fake.requests.length, 0)
  await t.rejects(app.sslcommerz.createSession({ ...base, amount: 5 }), { code: 'GW_SSLCOMMERZ_API', statusCode: 502, message: /session refused: Invalid amount/ })

  const wrong = await startFakeSslcommerz({ storePassword: 'another' })
  t.after(() => wrong.close())
  const other = await setup(t, { decorate: true }, wrong)
  await t.rejects(other.app.sslcommerz.createSession(base), { code: 'GW_SSLCOMMERZ_API', message: /Store Credential Error/ })
})

t.test('createSession without publicUrl needs the return URLs; without an IPN URL the panel\'s is used', async (t) => {
  const { app, fake } = await setup(t, { publicUrl: undefined })
  const base = { tranId: 'ORDER-2', amount: 100, product: { name: 'p', category: 'c' }, customer: { name: 'n', email: 'n@example.com', phone: '1', address: 'a', city: 'c' } }
  await t.rejects(app.sslcommerz.createSession(base), { code: 'GW_SSLCOMMERZ_NOT_CONFIGURED', message: /no success_url: set publicUrl \(PUBLIC_URL\) or pass it/ })
  await app.sslcommerz.createSession({ ...base, successUrl: 'https://s.example/ok', failUrl: 'https://s.example/fail', cancelUrl: 'https://s.example/cancel' })
  const [request] = fake.requests
  t.notOk('ipn_url' in request.form)
})

t.test('refunds, refund status and transaction queries go to SSLCommerz\'s merchant API with their parameters', async (t) => {
  const { app, fake } = await setup(t)
  const { tx } = fake.pay({ tran_id: 'ORDER-R', amount: '1000.00' })
  const refund = await app.sslcommerz.refund({ bankTranId: tx.bank_tran_id, amount: 250, remarks: 'one item back', refundTransId: 'REF-1', refeId: 'RMA-7' })
  t.match(refund, { APIConnect: 'DONE', status: 'success', bank_tran_id: tx.bank_tran_id, trans_id: 'ORDER-R' })
  const request = fake.requests.at(-1)
  t.equal(request?.path, '/validator/api/merchantTransIDvalidationAPI.php')
  t.same(request?.query, {
    bank_tran_id: tx.bank_tran_id, refund_amount: '250.00', refund_remarks: 'one item back', refund_trans_id: 'REF-1', refe_id: 'RMA-7',
    store_id: STORE_ID, store_passwd: STORE_PASSWORD, v: '1', format: 'json'
  })
  const repeat = await app.sslcommerz.refund({ bankTranId: tx.bank_tran_id, amount: '250.00', remarks: 'one item back', refundTransId: 'REF-1' })
  t.equal(repeat.refund_ref_id, refund.refund_ref_id, 'a retried refund request with its refundTransId is the same refund')
  const generated = await app.sslcommerz.refund({ bankTranId: tx.bank_tran_id, amount: 100, remarks: 'another' })
  t.match(fake.requests.at(-1)?.query.refund_trans_id, /^R[0-9a-f]{24}$/, 'a refund_trans_id is made when none is given')
  t.not(generated.refund_ref_id, refund.refund_ref_id)
  const tooMuch = await app.sslcommerz.refund({ bankTranId: tx.bank_tran_id, amount: 900, remarks: 'all' })
  t.match(tooMuch, { status: 'failed', errorReason: /exceeds/ }, 'SSLCommerz\'s own refusal comes back as its answer')
  await t.rejects(app.sslcommerz.refund({ bankTranId: tx.bank_tran_id, amount: 1.234, remarks: 'x' }), { code: 'GW_SSLCOMMERZ_INVALID_REQUEST' })
  await t.rejects(app.sslcommerz.refund({ bankTranId: '', amount: 1, remarks: 'x' } as never), { code: 'GW_SSLCOMMERZ_INVALID_REQUEST', message: /bankTranId/ })

  const status = await app.sslcommerz.refundStatus(refund.refund_ref_id as string)
  t.match(status, { APIConnect: 'DONE', status: 'refunded', refund_ref_id: refund.refund_ref_id, tran_id: 'ORDER-R' })
  t.same(fake.requests.at(-1)?.query, { refund_ref_id: refund.refund_ref_id, store_id: STORE_ID, store_passwd: STORE_PASSWORD, v: '1', format: 'json' })

  const query = await app.sslcommerz.queryByTranId('ORDER-R')
  t.equal(query.element.length, 1)
  t.match(query.element[0], { tran_id: 'ORDER-R', val_id: tx.val_id, status: 'VALID', amount: '1000.00' })
  t.equal(fake.requests.at(-1)?.query.tran_id, 'ORDER-R')
  t.same((await app.sslcommerz.queryByTranId('NONE')).element, [])
  t.match(await app.sslcommerz.validate(tx.val_id), { status: 'VALID', tran_id: 'ORDER-R' })
})

t.test('queryBySessionKey finds the transaction of a session paid on the payment page', async (t) => {
  const { app, fake } = await setup(t)
  const url = await app.sslcommerz.createSession({
    tranId: 'ORDER-S', amount: 300, product: { name: 'p', category: 'c' }, customer: { name: 'n', email: 'n@example.com', phone: '1', address: 'a', city: 'c' }
  })
  const sessionKey = url.split('/').at(-1) as string
  fake.complete(sessionKey, 'success')
  const found = await app.sslcommerz.queryBySessionKey(sessionKey)
  t.match(found, { APIConnect: 'DONE', no_of_trans_found: 1, element: [{ tran_id: 'ORDER-S', amount: '300.00' }] })
  t.equal(fake.requests.at(-1)?.query.sessionkey, sessionKey)
})

t.test('API errors: SSLCommerz\'s APIConnect, HTTP errors and bad answers reject with GW_SSLCOMMERZ_API, never the password', async (t) => {
  const wrong = await startFakeSslcommerz({ storePassword: 'rotated' })
  t.after(() => wrong.close())
  const { app } = await setup(t, {}, wrong)
  for (const call of [() => app.sslcommerz.queryByTranId('X'), () => app.sslcommerz.refundStatus('X'), () => app.sslcommerz.validate('X')]) {
    const err = await call().then(() => null, (e: Error) => e)
    t.match(err, { code: 'GW_SSLCOMMERZ_API', statusCode: 502, message: /APIConnect INVALID_REQUEST/ })
    t.notMatch(err?.message ?? '', /rotated|gatew0test01@ssl|store_passwd/)
  }
  const down = await startFakeSslcommerz()
  down.control.validation = 'down'
  t.after(() => down.close())
  const other = await setup(t, { decorate: true }, down)
  await t.rejects(other.app.sslcommerz.validate('X'), { code: 'GW_SSLCOMMERZ_API', message: /validation: HTTP 500/ })
})

t.test('the browser\'s return to the success URL is validated like an IPN, then redirected (303) to the host\'s page', async (t) => {
  const { app, fake, seen, events, ipn } = await setup(t, { redirects: { success: '/thanks', fail: 'https://shop.example.com/sorry', cancel: '/cart' } })
  const back = (path: string, fields: Record<string, string>) => app.inject({
    method: 'POST', url: `/payments/sslcommerz/${path}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: formBody(fields)
  })
  const { fields } = fake.pay({ values: { value_a: 'buyer-7' } })
  const landed = await back('success', fields)
  t.equal(landed.statusCode, 303)
  t.equal(landed.headers.location, '/thanks')
  t.equal(landed.headers['cache-control'], 'no-store')
  t.same(seen.map((s) => `${s.status} ${s.source} ${s.validation}`), ['VALID success VALID'], 'whichever comes first handles it')
  t.same((await ipn(fields)).json(), { received: true, duplicate: true }, 'the IPN after it is a duplicate')
  t.equal((await back('success', fields)).headers.location, '/thanks', 'a reload lands again')
  t.equal(events.filter((e) => e.room === 'sslcommerz').length, 1)

  const forged = await back('success', { ...fields, amount: '1.00' })
  t.equal(forged.headers.location, 'https://shop.example.com/sorry', 'a form that does not verify never lands on success')
  const unknown = await back('success', sign({ status: 'VALID', tran_id: 'T', val_id: 'NOPE', amount: '10.00', currency: 'BDT' }))
  t.equal(unknown.headers.location, 'https://shop.example.com/sorry', 'nor one the validation API does not confirm')
  const failedOnSuccess = await back('success', sign(unpaidFields('ORDER-X', 'FAILED')))
  t.equal(failedOnSuccess.headers.location, 'https://shop.example.com/sorry', 'a FAILED form posted to the success URL')
  t.equal((await back('fail', sign(unpaidFields('ORDER-F', 'FAILED')))).headers.location, 'https://shop.example.com/sorry')
  t.equal((await back('cancel', sign(unpaidFields('ORDER-C', 'CANCELLED')))).headers.location, '/cart')
  t.equal((await back('cancel', { tran_id: 'x' })).headers.location, '/cart', 'an unverified cancel still goes back to the cart')
  t.equal((await back('fail', {})).headers.location, 'https://shop.example.com/sorry')
  fake.control.validation = 'down'
  const next = fake.pay()
  t.equal((await back('success', next.fields)).headers.location, 'https://shop.example.com/sorry', 'unconfirmed: not the success page')
  t.same(seen.map((s) => `${s.status} ${s.source}`), ['VALID success', 'FAILED success', 'FAILED fail', 'CANCELLED cancel'])
})

t.test('a validated payment whose handler fails on the browser\'s return still lands on success; the IPN retries the handler', async (t) => {
  let runs = 0
  const { app, fake, ipn } = await setup(t, { on: { VALID: () => { if (++runs === 1) throw new Error('busy') } } })
  const { fields } = fake.pay()
  const res = await app.inject({ method: 'POST', url: '/payments/sslcommerz/success', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: formBody(fields) })
  t.equal(res.headers.location, '/?payment=success')
  t.same((await ipn(fields)).json(), { received: true })
  t.equal(runs, 2)
})

t.test('the store password, its MD5 and the signatures never reach the logs', async (t) => {
  const { app, fake, ipn, logs } = await setup(t)
  const { fields } = fake.pay()
  await ipn(fields)
  await ipn(fields)
  await ipn(sign(fields, 'guess'))
  await app.inject({ method: 'POST', url: '/payments/sslcommerz/success', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: formBody(fields) })
  fake.control.validation = 'down'
  await ipn(fake.pay().fields)
  await app.sslcommerz.validate('X').catch(() => {})
  const text = logs.text()
  t.match(text, /sslcommerz notification refused/)
  t.match(text, /could not be verified/)
  for (const secret of [STORE_PASSWORD, encodeURIComponent(STORE_PASSWORD), md5(STORE_PASSWORD), fields.verify_sign, fields.verify_sign_sha2]) {
    t.notOk(text.includes(secret), 'a secret is absent from the logs')
  }
})

t.test('options are validated at register time, naming the option and never echoing the password', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /storeId/],
    [{ storeId: STORE_ID }, /storePassword/],
    [{ storeId: 'has space', storePassword: 'secret-pw-1' }, /storeId/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', apiUrl: 'ftp://x' }, /apiUrl/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', publicUrl: 'https://x.example/?q' }, /publicUrl/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', on: { PAID: () => {} } }, /on: unknown option "PAID"/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', on: { VALID: 'yes' } }, /on.VALID: must be a function/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', loadOrder: 42 }, /loadOrder/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', redirects: { success: 'javascript:alert(1)' } }, /redirects.success/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', redirects: { success: '//evil.example' } }, /redirects.success/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', ipnPath: '/payments/sslcommerz/success' }, /must differ/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', room: 'bad room' }, /room/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', store: {} }, /store: must implement DedupeStore/],
    [{ storeId: STORE_ID, storePassword: 'secret-pw-1', typo: true }, /unknown option "typo"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    const err = await (async () => { await app.register(sslcommerzGateway, options as never); await app.ready() })().then(() => null, (e: Error) => e)
    t.match(err, { code: 'GW_INVALID_OPTIONS', message }, JSON.stringify(options))
    t.notMatch(err?.message ?? '', /secret-pw-1/)
    await app.close()
  }
})

t.test('sandbox by default, live with live: true, any base with apiUrl; a second gateway needs decorate: false', async (t) => {
  const sandbox = Fastify()
  t.after(() => sandbox.close())
  await sandbox.register(sslcommerzGateway, { storeId: STORE_ID, storePassword: 'pw' })
  t.equal(sandbox.sslcommerz.baseUrl, 'https://sandbox.sslcommerz.com')
  await t.rejects(async () => { await sandbox.register(sslcommerzGateway, { storeId: 'other', storePassword: 'pw', ipnPath: '/b', successPath: '/b/s', failPath: '/b/f', cancelPath: '/b/c' }) }, /decorate: false/)
  const live = Fastify()
  t.after(() => live.close())
  await live.register(sslcommerzGateway, { storeId: STORE_ID, storePassword: 'pw', live: true })
  await live.register(sslcommerzGateway, { storeId: 'other', storePassword: 'pw', decorate: false, ipnPath: '/b', successPath: '/b/s', failPath: '/b/f', cancelPath: '/b/c' })
  await live.ready()
  t.equal(live.sslcommerz.baseUrl, 'https://securepay.sslcommerz.com')
  const proxied = Fastify()
  t.after(() => proxied.close())
  await proxied.register(sslcommerzGateway, { storeId: STORE_ID, storePassword: 'pw', live: true, apiUrl: 'http://127.0.0.1:9/base/' })
  t.equal(proxied.sslcommerz.baseUrl, 'http://127.0.0.1:9/base')
})

t.test('a publish that fails is not marked handled: the bus error (503) or a 500, and the retry publishes', async (t) => {
  const { app, fake, seen, events, ipn } = await setup(t)
  const publish = app.rooms.publish.bind(app.rooms)
  let failure: Error | null = new GatewayErrors.BUS_UNAVAILABLE('redis down')
  app.rooms.publish = ((...args: Parameters<typeof publish>) => {
    if (failure !== null) throw failure
    return publish(...args)
  }) as typeof publish
  const { fields } = fake.pay()
  const busDown = await ipn(fields)
  t.equal(busDown.statusCode, 503)
  t.match(busDown.json(), { code: 'GW_BUS_UNAVAILABLE' })
  failure = new Error('something else')
  const other = await ipn(fields)
  t.equal(other.statusCode, 500)
  t.match(other.json(), { code: 'GW_SSLCOMMERZ_HANDLER' })
  failure = null
  t.same((await ipn(fields)).json(), { received: true })
  t.equal(seen.length, 3, 'the handlers ran on each attempt (they must be idempotent)')
  t.equal(events.length, 1)
})

t.test('publish: false publishes nothing; handlers after an aborted one do not start', async (t) => {
  let later = 0
  const { fake, events, ipn } = await setup(t, {
    publish: false,
    handlerTimeoutMs: 20,
    on: {
      VALID: async (_n, ctx) => { await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) },
      '*': () => { later++ }
    }
  })
  t.equal((await ipn(fake.pay().fields)).statusCode, 500)
  t.equal(later, 0)
  t.equal((await ipn(sign(unpaidFields('ORDER-Q', 'FAILED')))).statusCode, 200)
  t.equal(later, 1)
  t.equal(events.length, 0)
})

t.test('a dedupe store that is down answers 503 after the checks and runs nothing', async (t) => {
  const store = new ObservedStore()
  const { fake, seen, events, ipn } = await setup(t, { store })
  store.fail.claim = true
  const res = await ipn(fake.pay().fields)
  t.equal(res.statusCode, 503)
  t.match(res.json(), { statusCode: 503, code: 'GW_STORE_UNAVAILABLE' })
  t.equal(seen.length, 0)
  t.equal(events.length, 0)
})
