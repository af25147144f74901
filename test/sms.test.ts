import t from 'tap'
import Fastify from 'fastify'
import { smsGateway, type InboundSms, type SmsHandlerContext, type SmsStatus } from '../plugins/sms.js'
import { ACCOUNT_SID, MESSAGE_SID, TOKEN, formBody, inboundParams, listen, post, sign, smsApp } from './helpers/fake-twilio.js'
import { ObservedStore } from './helpers/fake-stripe.js'

const TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

t.test('a correctly signed inbound SMS gets 200 with an empty TwiML response', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const res = await post(app, { params: inboundParams() })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/xml/)
  t.equal(res.body, TWIML_EMPTY)
})

t.test('an inbound SMS is published to room sms as sms.received {from,to,body,sid}', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const params = inboundParams({ Body: 'Order #42 ready?' })
  const res = await post(app, { params })
  t.equal(res.statusCode, 200)
  t.equal(events.length, 1)
  t.equal(events[0].event, 'sms.received')
  t.same(JSON.parse(events[0].dataJson), { from: '+15551234567', to: '+15557654321', body: 'Order #42 ready?', sid: params.MessageSid })
})

t.test('a request without X-Twilio-Signature gets 403 and publishes nothing', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const res = await post(app, { params: inboundParams(), signature: null })
  t.equal(res.statusCode, 403)
  t.same(res.json(), { statusCode: 403, code: 'GW_SMS_BAD_SIGNATURE', error: 'Forbidden', message: 'missing X-Twilio-Signature' })
  t.equal(events.length, 0)
})

t.test('a signature made with another token gets 403', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const res = await post(app, { params: inboundParams(), token: 'not-the-token' })
  t.equal(res.statusCode, 403)
  t.equal(res.json().message, 'invalid X-Twilio-Signature')
  const garbage = await post(app, { params: inboundParams(), signature: 'AAAA' })
  t.equal(garbage.statusCode, 403)
  t.equal(events.length, 0)
})

t.test('a tampered parameter breaks the signature: 403', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const params = inboundParams()
  const signature = sign('http://localhost/webhooks/sms', params)
  const tampered = await post(app, { params: { ...params, Body: 'Hello therf' }, signature })
  t.equal(tampered.statusCode, 403)
  const added = await post(app, { params: { ...params, Extra: '1' }, signature })
  t.equal(added.statusCode, 403)
  const intact = await post(app, { params, signature })
  t.equal(intact.statusCode, 200, 'the same signature verifies the untouched parameters')
})

t.test('a signature for another path or query string gets 403', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const params = inboundParams()
  const res = await post(app, { url: '/webhooks/sms?tenant=a', params, signedUrl: 'http://localhost/webhooks/sms?tenant=b' })
  t.equal(res.statusCode, 403)
  const ok = await post(app, { url: '/webhooks/sms?tenant=a', params, signedUrl: 'http://localhost/webhooks/sms?tenant=a' })
  t.equal(ok.statusCode, 200)
})

t.test('repeated parameters are kept as arrays, verify, and reach the handler as arrays', async (t) => {
  let params: unknown
  const app = await smsApp({ on: { received: (_m, ctx) => { params = ctx.params.Tag } } })
  t.after(() => app.close())
  const signed = inboundParams({ Tag: ['vip', 'beta'] })
  const res = await post(app, { params: signed })
  t.equal(res.statusCode, 200)
  t.same(params, ['vip', 'beta'])
  // only the first of the two values signed: the second one is a tampering
  const partial = await post(app, { params: signed, signature: sign('http://localhost/webhooks/sms', inboundParams({ Tag: 'vip' })) })
  t.equal(partial.statusCode, 403)
})

t.test('several auth tokens (rotation): a signature with any of them verifies', async (t) => {
  const app = await smsApp({ authToken: ['old-token-1111', 'new-token-2222'] })
  t.after(() => app.close())
  t.equal((await post(app, { params: inboundParams(), token: 'old-token-1111' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'new-token-2222' })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'third-token-3333' })).statusCode, 403)
})

t.test('behind a TLS proxy that Fastify trusts: the https URL from X-Forwarded-Proto/Host verifies', async (t) => {
  const app = await smsApp({}, { trustProxy: true })
  t.after(() => app.close())
  const res = await post(app, {
    params: inboundParams(),
    signedUrl: 'https://sms.example.com/webhooks/sms',
    headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'sms.example.com', 'x-forwarded-for': '203.0.113.9' }
  })
  t.equal(res.statusCode, 200)
})

t.test('without trustProxy the X-Forwarded-* headers are ignored: only the URL of the Host header verifies', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'sms.example.com' }
  const forged = await post(app, { params: inboundParams(), signedUrl: 'https://sms.example.com/webhooks/sms', headers })
  t.equal(forged.statusCode, 403)
  const direct = await post(app, { params: inboundParams(), signedUrl: 'http://localhost/webhooks/sms', headers })
  t.equal(direct.statusCode, 200)
})

t.test('a trustProxy list that does not include the peer ignores its X-Forwarded-* headers', async (t) => {
  const app = await smsApp({}, { trustProxy: ['10.0.0.0/8'] })
  t.after(() => app.close())
  const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'sms.example.com' }
  const fromOutside = await post(app, { params: inboundParams(), signedUrl: 'https://sms.example.com/webhooks/sms', headers })
  t.equal(fromOutside.statusCode, 403, '127.0.0.1 is not a trusted proxy')
  const fromProxy = await post(app, {
    params: inboundParams(), signedUrl: 'https://sms.example.com/webhooks/sms', headers, remoteAddress: '10.1.2.3'
  })
  t.equal(fromProxy.statusCode, 200, '10.1.2.3 is a trusted proxy')
})

t.test('a non-default port Twilio signed is kept, and a different port does not verify', async (t) => {
  const app = await smsApp({}, { trustProxy: true })
  t.after(() => app.close())
  const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'sms.example.com:8443' }
  const ok = await post(app, { params: inboundParams(), signedUrl: 'https://sms.example.com:8443/webhooks/sms', headers })
  t.equal(ok.statusCode, 200)
  const otherPort = await post(app, { params: inboundParams(), signedUrl: 'https://sms.example.com:9443/webhooks/sms', headers })
  t.equal(otherPort.statusCode, 403)
  // X-Forwarded-Port (a proxy that sends the host without its port)
  const byPortHeader = await post(app, {
    params: inboundParams(),
    signedUrl: 'https://sms.example.com:8443/webhooks/sms',
    headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'sms.example.com', 'x-forwarded-port': '8443' }
  })
  t.equal(byPortHeader.statusCode, 200)
})

t.test('without a proxy, a non-default port in the Host header is kept', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const headers = { host: 'sms.example.com:3000' }
  t.equal((await post(app, { params: inboundParams(), signedUrl: 'http://sms.example.com:3000/webhooks/sms', headers })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), signedUrl: 'http://sms.example.com:3001/webhooks/sms', headers })).statusCode, 403)
})

t.test('multi-hop proxies: the FIRST X-Forwarded-Proto/Host entries (what Twilio saw) are used, not the last', async (t) => {
  let fastifyView = ''
  const app = await smsApp({ on: { received: (_m, ctx) => { fastifyView = `${ctx.request.protocol}://${ctx.request.host}` } } }, { trustProxy: true })
  t.after(() => app.close())
  const headers = {
    'x-forwarded-proto': 'https, http',
    'x-forwarded-host': 'sms.example.com, internal-lb:8080',
    'x-forwarded-for': '203.0.113.9, 10.0.0.7'
  }
  const res = await post(app, { params: inboundParams(), signedUrl: 'https://sms.example.com/webhooks/sms', headers })
  t.equal(res.statusCode, 200)
  t.equal(fastifyView, 'http://internal-lb:8080', 'Fastify itself takes the last hop, which Twilio did not sign')
  const lastHop = await post(app, { params: inboundParams(), signedUrl: 'http://internal-lb:8080/webhooks/sms', headers })
  t.equal(lastHop.statusCode, 403)
})

t.test('publicUrl wins: the configured base URL plus the path and raw query string is verified', async (t) => {
  const app = await smsApp({ publicUrl: 'https://public.example.com/base/' }, { trustProxy: true })
  t.after(() => app.close())
  const url = '/webhooks/sms?tenant=a%20b&x=1'
  const headers = { host: 'internal:3000', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'proxy.internal' }
  const ok = await post(app, { url, params: inboundParams(), signedUrl: `https://public.example.com/base${url}`, headers })
  t.equal(ok.statusCode, 200)
  const fromHeaders = await post(app, { url, params: inboundParams(), signedUrl: `http://proxy.internal${url}`, headers })
  t.equal(fromHeaders.statusCode, 403)
})

t.test('a malformed Host or an unknown forwarded scheme cannot verify: 403', async (t) => {
  const app = await smsApp({}, { trustProxy: true })
  t.after(() => app.close())
  const badProto = await post(app, {
    params: inboundParams(), signedUrl: 'ftp://sms.example.com/webhooks/sms', headers: { 'x-forwarded-proto': 'ftp', 'x-forwarded-host': 'sms.example.com' }
  })
  t.equal(badProto.statusCode, 403)
  const badHost = await post(app, {
    params: inboundParams(), signedUrl: 'http://a b/webhooks/sms', headers: { 'x-forwarded-host': 'a b' }
  })
  t.equal(badHost.statusCode, 403)
})

t.test('a JSON body gets 415, even when signed', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const params = inboundParams()
  const res = await app.inject({
    method: 'POST',
    url: '/webhooks/sms',
    headers: { 'content-type': 'application/json', 'x-twilio-signature': sign('http://localhost/webhooks/sms', params) },
    payload: JSON.stringify(params)
  })
  t.equal(res.statusCode, 415)
  t.equal(res.json().statusCode, 415)
  t.equal(events.length, 0)
})

t.test('text/plain and a body without a content type get 415 too', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const text = await app.inject({ method: 'POST', url: '/webhooks/sms', headers: { 'content-type': 'text/plain' }, payload: 'Body=hi' })
  t.equal(text.statusCode, 415)
  const none = await app.inject({ method: 'POST', url: '/webhooks/sms/status' })
  t.equal(none.statusCode, 415)
  t.equal(none.json().code, 'GW_SMS_MEDIA_TYPE')
})

t.test('a body over bodyLimit gets 413', async (t) => {
  const app = await smsApp({ bodyLimit: 2048 })
  t.after(() => app.close())
  const res = await post(app, { params: inboundParams({ Body: 'x'.repeat(4096) }) })
  t.equal(res.statusCode, 413)
})

t.test('the reply returned by on.received is sent as escaped TwiML', async (t) => {
  const app = await smsApp({ on: { received: () => 'Tom & Jerry <b>"hi"</b> it\'s \u0007ok' } })
  t.after(() => app.close())
  const res = await post(app, { params: inboundParams() })
  t.equal(res.statusCode, 200)
  t.equal(res.body, '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Tom &amp; Jerry &lt;b&gt;&quot;hi&quot;&lt;/b&gt; it&apos;s ok</Message></Response>')
})

t.test('an inbound body with markup cannot inject TwiML into an echo reply', async (t) => {
  const app = await smsApp({ on: { received: (m) => [`You said: ${m.body}`, 'Bye'] } })
  t.after(() => app.close())
  const res = await post(app, { params: inboundParams({ Body: '</Message><Redirect>https://evil.example</Redirect><Message>' }) })
  t.equal(res.statusCode, 200)
  t.notMatch(res.body, /<Redirect>/)
  t.equal(res.body.match(/<Message>/g)?.length, 2)
  t.match(res.body, '&lt;/Message&gt;&lt;Redirect&gt;')
})

t.test('autoReply answers every inbound message the handler does not answer itself', async (t) => {
  const app = await smsApp({ autoReply: 'Thanks! We\'ll reply soon & stay tuned', on: { received: (m) => m.body === 'STATUS' ? 'All good' : undefined } })
  t.after(() => app.close())
  const auto = await post(app, { params: inboundParams() })
  t.equal(auto.body, '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks! We&apos;ll reply soon &amp; stay tuned</Message></Response>')
  const own = await post(app, { params: inboundParams({ Body: 'STATUS' }) })
  t.match(own.body, '<Message>All good</Message>')
})

t.test('on.received gets the typed, parsed message and a context', async (t) => {
  let seen: InboundSms | undefined
  let ctx: SmsHandlerContext | undefined
  const app = await smsApp({ on: { received: (m, c) => { seen = m; ctx = c } } })
  t.after(() => app.close())
  const res = await post(app, {
    params: inboundParams({
      MessageSid: MESSAGE_SID,
      NumMedia: '2',
      MediaUrl0: 'https://api.twilio.com/m/0',
      MediaContentType0: 'image/jpeg',
      MediaUrl1: 'https://api.twilio.com/m/1',
      OptOutType: 'STOP'
    })
  })
  t.equal(res.statusCode, 200)
  t.match(seen, {
    sid: MESSAGE_SID,
    accountSid: ACCOUNT_SID,
    from: '+15551234567',
    to: '+15557654321',
    body: 'Hello there',
    numMedia: 2,
    numSegments: 1,
    fromCity: 'SAN FRANCISCO',
    optOutType: 'STOP',
    media: [{ url: 'https://api.twilio.com/m/0', contentType: 'image/jpeg' }, { url: 'https://api.twilio.com/m/1' }]
  })
  t.equal(ctx?.rooms, app.rooms)
  t.equal(ctx?.sms, app.sms)
  t.equal(ctx?.params.ToZip, '94105')
})

t.test('a signed inbound webhook missing From gets 400 naming the field', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const params = inboundParams()
  delete params.From
  const res = await post(app, { params })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'GW_SMS_BAD_REQUEST')
  t.match(res.json().message, /From/)
})

t.test('a handler that throws gets 500 and nothing is published', async (t) => {
  const app = await smsApp({ on: { received: () => { throw new Error('database down') } } })
  t.after(() => app.close())
  const events = listen(app)
  const res = await post(app, { params: inboundParams() })
  t.equal(res.statusCode, 500)
  t.equal(events.length, 0)
})

function statusParams (overrides: Record<string, string> = {}) {
  return {
    SmsSid: MESSAGE_SID,
    SmsStatus: 'delivered',
    MessageStatus: 'delivered',
    To: '+15551234567',
    MessageSid: MESSAGE_SID,
    AccountSid: ACCOUNT_SID,
    From: '+15557654321',
    ApiVersion: '2010-04-01',
    ...overrides
  }
}

t.test('a status callback is verified, answered 200 and published as sms.status', async (t) => {
  let seen: SmsStatus | undefined
  const app = await smsApp({ on: { status: (s) => { seen = s } } })
  t.after(() => app.close())
  const events = listen(app)
  const url = '/webhooks/sms/status'
  const res = await post(app, { url, params: statusParams() })
  t.equal(res.statusCode, 200)
  t.equal(res.body, TWIML_EMPTY)
  t.equal(events[0].event, 'sms.status')
  t.same(JSON.parse(events[0].dataJson), { sid: MESSAGE_SID, status: 'delivered', to: '+15551234567', from: '+15557654321' })
  t.match(seen, { sid: MESSAGE_SID, status: 'delivered', accountSid: ACCOUNT_SID })
  const failed = await post(app, { url, params: statusParams({ MessageStatus: 'undelivered', SmsStatus: 'undelivered', ErrorCode: '30003', ErrorMessage: 'Unreachable' }) })
  t.equal(failed.statusCode, 200)
  t.same(JSON.parse(events[1].dataJson), { sid: MESSAGE_SID, status: 'undelivered', to: '+15551234567', from: '+15557654321', errorCode: 30003 })
  t.equal(seen?.errorMessage, 'Unreachable')
})

t.test('a status callback with a bad signature gets 403 and publishes nothing', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const res = await post(app, { url: '/webhooks/sms/status', params: statusParams(), signedUrl: 'http://localhost/webhooks/sms' })
  t.equal(res.statusCode, 403)
  t.equal(events.length, 0)
})

t.test('a status callback of the legacy form (SmsSid/SmsStatus only, no From) is accepted', async (t) => {
  const app = await smsApp()
  t.after(() => app.close())
  const events = listen(app)
  const params = { SmsSid: MESSAGE_SID, SmsStatus: 'sent', To: '+15551234567', ErrorCode: '' }
  const res = await post(app, { url: '/webhooks/sms/status', params })
  t.equal(res.statusCode, 200)
  t.same(JSON.parse(events[0].dataJson), { sid: MESSAGE_SID, status: 'sent', to: '+15551234567', from: null })
})

t.test('room, paths and publish are options', async (t) => {
  const app = await smsApp({ room: 'texts', path: '/twilio/in', statusPath: '/twilio/status' })
  t.after(() => app.close())
  const events = listen(app, 'texts')
  t.equal((await post(app, { url: '/twilio/in', params: inboundParams() })).statusCode, 200)
  t.equal((await post(app, { url: '/twilio/status', params: statusParams() })).statusCode, 200)
  t.same(events.map((e) => e.event), ['sms.received', 'sms.status'])
  t.equal((await post(app, { params: inboundParams() })).statusCode, 404)

  const quiet = await smsApp({ publish: false })
  t.after(() => quiet.close())
  const none = listen(quiet)
  t.equal((await post(quiet, { params: inboundParams() })).statusCode, 200)
  t.equal(none.length, 0)
})

t.test('inbound webhooks are rate limited per source IP: 429 past ratePerMin', async (t) => {
  const app = await smsApp({ ratePerMin: 2 })
  t.after(() => app.close())
  t.equal((await post(app, { params: inboundParams() })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), signature: null })).statusCode, 403, 'unsigned requests count too')
  const limited = await post(app, { params: inboundParams() })
  t.equal(limited.statusCode, 429)
  t.ok(limited.headers['retry-after'])
  const otherIp = await post(app, { params: inboundParams(), remoteAddress: '192.0.2.10' })
  t.equal(otherIp.statusCode, 200, 'another source IP has its own budget')
})

t.test('the rate limit and form parser stay in the gateway: host routes are untouched', async (t) => {
  const app = Fastify()
  await app.register(smsGateway, { authToken: TOKEN, ratePerMin: 1 })
  app.post('/host/json', async (request) => ({ got: request.body }))
  await app.ready()
  t.after(() => app.close())
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'POST', url: '/host/json', payload: { a: i } })
    t.equal(res.statusCode, 200, `host JSON request ${i} parsed and not rate limited`)
    t.same(res.json(), { got: { a: i } })
  }
  const form = await app.inject({
    method: 'POST', url: '/host/json', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: formBody({ a: '1' })
  })
  t.equal(form.statusCode, 415, 'the host did not gain a form parser')
})

t.test('our 403 keeps its shape under a host error handler', async (t) => {
  const app = Fastify()
  app.setErrorHandler((_err, _request, reply) => reply.code(500).send({ host: true }))
  await app.register(smsGateway, { authToken: TOKEN, on: { received: () => { throw new Error('boom') } } })
  await app.ready()
  t.after(() => app.close())
  const refused = await post(app, { params: inboundParams(), signature: null })
  t.equal(refused.statusCode, 403)
  const failed = await post(app, { params: inboundParams() })
  t.same(failed.json(), { host: true }, 'other errors reach the host error handler')
})

t.test('invalid options fail register with a message naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /authToken/],
    [{ authToken: [] }, /authToken/],
    [{ authToken: TOKEN, accountSid: 'AC123' }, /accountSid/],
    [{ authToken: TOKEN, from: '5551234' }, /from/],
    [{ authToken: TOKEN, publicUrl: 'ftp://x.example' }, /publicUrl/],
    [{ authToken: TOKEN, publicUrl: 'https://x.example/?a=1' }, /publicUrl: must not have a query/],
    [{ authToken: TOKEN, publicUrl: 'not a url' }, /publicUrl/],
    [{ authToken: TOKEN, room: 'bad room' }, /room/],
    [{ authToken: TOKEN, statusPath: '/webhooks/sms' }, /statusPath/],
    [{ authToken: TOKEN, on: { received: 'x' } }, /on.received/],
    [{ authToken: TOKEN, client: {} }, /client/],
    [{ authToken: TOKEN, httpClient: 42 }, /httpClient/],
    [{ authToken: TOKEN, httpClient: () => null, client: { messages: { create: async () => ({}) } } }, /httpClient/],
    [{ authToken: TOKEN, ratePerMin: 0 }, /ratePerMin/],
    [{ authToken: TOKEN, typo: 1 }, /unknown option "typo"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(smsGateway, options as never) }, { code: 'GW_INVALID_OPTIONS', message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('a second gateway on the same instance needs decorate: false', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(smsGateway, { authToken: TOKEN })
  await t.rejects(async () => { await app.register(smsGateway, { authToken: TOKEN, path: '/b', statusPath: '/b/status' }) }, /decorate/)
  const ok = Fastify()
  t.after(() => ok.close())
  await ok.register(smsGateway, { authToken: TOKEN })
  await ok.register(smsGateway, { authToken: 'other', path: '/b', statusPath: '/b/status', decorate: false })
  await ok.ready()
  t.equal((await post(ok, { url: '/b', params: inboundParams(), token: 'other' })).statusCode, 200)
})

t.test('a Twilio redelivery of an inbound message (same MessageSid) runs nothing and answers the first reply again', async (t) => {
  let runs = 0
  const app = await smsApp({ on: { received: (m) => { runs++; return `reply ${runs} to ${m.body}` } } })
  t.after(() => app.close())
  const events = listen(app)
  const params = inboundParams({ Body: 'hello' })
  const first = await post(app, { params })
  const again = await post(app, { params })
  t.equal(again.statusCode, 200)
  t.equal(again.body, first.body, 'the same TwiML: Twilio sends the reply it did not get the first time')
  t.match(first.body, '<Message>reply 1 to hello</Message>')
  t.equal(runs, 1)
  t.equal(events.length, 1, 'published once')
  const other = await post(app, { params: inboundParams({ Body: 'hello' }) })
  t.match(other.body, '<Message>reply 2 to hello</Message>', 'another message (another sid) runs')
  t.same(app.rooms.counters.webhooks.sms, { handled: 2, duplicate: 1, rejected: 0, failed: 0 })
})

t.test('status callbacks are deduplicated by MessageSid and status: a repeat publishes nothing, the next status does', async (t) => {
  const seen: string[] = []
  const app = await smsApp({ on: { status: (s) => { seen.push(s.status) } } })
  t.after(() => app.close())
  const events = listen(app)
  const url = '/webhooks/sms/status'
  for (const status of ['sent', 'sent', 'delivered', 'delivered']) {
    const res = await post(app, { url, params: statusParams({ MessageStatus: status, SmsStatus: status }) })
    t.equal(res.statusCode, 200)
    t.equal(res.body, TWIML_EMPTY)
  }
  t.same(seen, ['sent', 'delivered'])
  t.same(events.map((e) => JSON.parse(e.dataJson).status), ['sent', 'delivered'])
})

t.test('a handler that throws is not marked handled: Twilio\'s retry runs it, then a repeat is a duplicate', async (t) => {
  let runs = 0
  const app = await smsApp({ on: { received: () => { if (++runs === 1) throw new Error('database down') } } })
  t.after(() => app.close())
  const events = listen(app)
  const params = inboundParams()
  const failed = await post(app, { params })
  t.equal(failed.statusCode, 500)
  t.match(failed.json(), { statusCode: 500, code: 'GW_SMS_HANDLER', message: /not marked handled/ })
  t.notMatch(failed.body, /database down/, 'the handler\'s error stays in the logs')
  t.equal((await post(app, { params })).statusCode, 200)
  t.equal((await post(app, { params })).statusCode, 200)
  t.equal(runs, 2)
  t.equal(events.length, 1)
})

t.test('two concurrent deliveries of one message run the handler once; both get its reply', async (t) => {
  const store = new ObservedStore()
  let runs = 0
  let open: () => void = () => {}
  const held = new Promise<void>((resolve) => { open = resolve })
  const app = await smsApp({ store, on: { received: async () => { runs++; await held; return 'one reply' } } })
  t.after(() => app.close())
  const params = inboundParams()
  const first = post(app, { params })
  const second = post(app, { params })
  await store.waiting
  open()
  const answers = await Promise.all([first, second])
  t.same(answers.map((res) => res.statusCode), [200, 200])
  for (const res of answers) t.match(res.body, '<Message>one reply</Message>')
  t.equal(runs, 1)
})

t.test('a concurrent delivery whose first attempt fails answers 500 too; the retry after runs it', async (t) => {
  const store = new ObservedStore()
  let runs = 0
  let fail: (err: Error) => void = () => {}
  const app = await smsApp({ store, on: { received: async () => { if (++runs === 1) await new Promise<void>((_resolve, reject) => { fail = reject }) } } })
  t.after(() => app.close())
  const params = inboundParams()
  const first = post(app, { params })
  const second = post(app, { params })
  await store.waiting
  fail(new Error('down'))
  const [a, b] = await Promise.all([first, second])
  t.equal(a.statusCode, 500)
  t.match(b.json(), { statusCode: 500, code: 'GW_SMS_IN_FLIGHT' })
  t.equal((await post(app, { params })).statusCode, 200)
  t.equal(runs, 2)
})

t.test('a handler past its time budget answers 500 and its signal aborts', async (t) => {
  let aborted: unknown
  const app = await smsApp({
    handlerTimeoutMs: 30,
    on: { received: async (_m, ctx) => { await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)); aborted = ctx.signal.reason } }
  })
  t.after(() => app.close())
  const res = await post(app, { params: inboundParams() })
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 'GW_SMS_TIMEOUT', message: /30 ms budget/ })
  t.match(aborted, { code: 'GW_SMS_TIMEOUT' })
})

t.test('a dedupe store that is down answers 503 and runs nothing; refusals are counted as rejected', async (t) => {
  const store = new ObservedStore()
  let runs = 0
  const app = await smsApp({ store, on: { received: () => { runs++ } } })
  t.after(() => app.close())
  store.fail.claim = true
  const res = await post(app, { params: inboundParams() })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'GW_STORE_UNAVAILABLE')
  t.equal(runs, 0)
  t.equal((await post(app, { params: inboundParams(), signature: null })).statusCode, 403)
  t.same(app.rooms.counters.webhooks.sms, { handled: 0, duplicate: 0, rejected: 1, failed: 1 })
})
