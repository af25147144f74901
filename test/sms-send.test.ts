import t from 'tap'
import Fastify from 'fastify'
import { smsGateway, SmsSendError } from '../plugins/sms.js'
import { createSender, type SmsClient, type TwilioModule } from '../lib/sms/client.js'
import { loggerOptions } from '../lib/log.js'
import { logCapture } from './helpers/app.js'
import { ACCOUNT_SID, TOKEN, inboundParams, post, smsApp, startFakeTwilio } from './helpers/fake-twilio.js'

const FROM = '+15557654321'
const SERVICE = `MG${'b2'.repeat(16)}`

async function setup (t: { after: (fn: () => unknown) => unknown }, options: Record<string, unknown> = {}, answer?: Parameters<typeof startFakeTwilio>[0]) {
  const fake = await startFakeTwilio(answer)
  t.after(() => fake.close())
  const app = await smsApp({ accountSid: ACCOUNT_SID, from: FROM, httpClient: fake.httpClient, ...options })
  t.after(() => app.close())
  return { app, fake }
}

t.test('app.sms.send creates the message through the real twilio client: Basic auth, form body, status callback', async (t) => {
  const { app, fake } = await setup(t, { publicUrl: 'https://api.example.com/' })
  const sent = await app.sms.send({ to: '+15551234567', body: 'Your code is 1234' })
  t.same(sent, { sid: `SM${'1'.padStart(32, '0')}`, status: 'queued', to: '+15551234567', from: FROM })
  t.equal(fake.requests.length, 1)
  const [req] = fake.requests
  t.equal(req.method, 'POST')
  t.equal(req.url, `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`)
  t.equal(req.headers.authorization, `Basic ${Buffer.from(`${ACCOUNT_SID}:${TOKEN}`).toString('base64')}`)
  t.match(req.headers['content-type'], /^application\/x-www-form-urlencoded/)
  t.same(req.form, { To: '+15551234567', From: FROM, Body: 'Your code is 1234', StatusCallback: 'https://api.example.com/webhooks/sms/status' })
  await app.sms.send({ to: '+15551234568', body: 'again' })
  t.equal(fake.requests.length, 2, 'the client is reused')
})

t.test('without publicUrl no status callback is set; a Messaging Service SID is sent as MessagingServiceSid', async (t) => {
  const { app, fake } = await setup(t, { from: SERVICE })
  const sent = await app.sms.send({ to: '+15551234567', body: 'hi' })
  t.equal(sent.status, 'accepted')
  t.same(fake.requests[0].form, { To: '+15551234567', MessagingServiceSid: SERVICE, Body: 'hi' })
  await app.sms.send({ to: '+15551234567', body: 'hi', from: '+15550001111' })
  t.same(fake.requests[1].form, { To: '+15551234567', From: '+15550001111', Body: 'hi' }, 'a per-message from wins')
})

t.test('with several auth tokens the REST client authenticates with the first', async (t) => {
  const { app, fake } = await setup(t, { authToken: ['current-token', 'previous-token'] })
  await app.sms.send({ to: '+15551234567', body: 'hi' })
  t.equal(fake.requests[0].headers.authorization, `Basic ${Buffer.from(`${ACCOUNT_SID}:current-token`).toString('base64')}`)
})

t.test('a Twilio API error becomes an SmsSendError with Twilio\'s code, status and moreInfo', async (t) => {
  const { app } = await setup(t, {}, () => ({
    status: 400,
    body: { code: 21211, message: "The 'To' number +15005550001 is not a valid phone number.", more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 }
  }))
  const err = await app.sms.send({ to: '+15005550001', body: 'hi' }).catch((e: unknown) => e)
  t.ok(err instanceof SmsSendError)
  t.match(err, {
    name: 'SmsSendError',
    code: 21211,
    status: 400,
    moreInfo: 'https://www.twilio.com/docs/errors/21211',
    statusCode: 502,
    message: "Twilio refused the message: The 'To' number +15005550001 is not a valid phone number."
  })
})

t.test('Twilio out of reach becomes an SmsSendError without status, and nothing in it carries the token', async (t) => {
  const { app, fake } = await setup(t)
  await fake.close()
  const err = await app.sms.send({ to: '+15551234567', body: 'hi' }).catch((e: unknown) => e) as SmsSendError
  t.ok(err instanceof SmsSendError)
  t.equal(err.status, undefined)
  t.match(err.message, /^could not reach Twilio: /)
  const everything = JSON.stringify(err) + err.message + String(err.stack) + JSON.stringify(Object.entries(err))
  t.notMatch(everything, TOKEN)
  t.notMatch(everything, Buffer.from(`${ACCOUNT_SID}:${TOKEN}`).toString('base64'))
})

t.test('invalid input is refused before any request: E.164 to, body length, from', async (t) => {
  const { app, fake } = await setup(t)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ to: '5551234567', body: 'hi' }, /to must be an E.164 number/],
    [{ to: '+1 555 123 4567', body: 'hi' }, /E.164/],
    [{ to: '+15551234567', body: '' }, /body must be/],
    [{ to: '+15551234567', body: 'x'.repeat(1601) }, /body must be/],
    [{ to: '+15551234567', body: 'hi', from: 'ACME' }, /from must be/]
  ]
  for (const [message, pattern] of cases) {
    await t.rejects(app.sms.send(message as never), { code: 'GW_SMS_INVALID', statusCode: 400, message: pattern }, JSON.stringify(message))
  }
  await t.rejects(app.sms.send(undefined as never), { code: 'GW_SMS_INVALID' })
  t.equal(fake.requests.length, 0)
})

t.test('sending without an account SID or a sender says what is missing', async (t) => {
  const app = await smsApp({ from: FROM })
  t.after(() => app.close())
  await t.rejects(app.sms.send({ to: '+15551234567', body: 'hi' }), { code: 'GW_SMS_NOT_CONFIGURED', message: /accountSid/ })
  const noFrom = await smsApp({ accountSid: ACCOUNT_SID })
  t.after(() => noFrom.close())
  await t.rejects(noFrom.sms.send({ to: '+15551234567', body: 'hi' }), { code: 'GW_SMS_NOT_CONFIGURED', message: /from/ })
})

t.test('a given client is used as is, without an account SID', async (t) => {
  const calls: unknown[] = []
  const client: SmsClient = {
    messages: {
      async create (params) {
        calls.push(params)
        return { sid: 'SMstub', status: 'queued', to: params.to, from: null }
      }
    }
  }
  const app = await smsApp({ client, from: FROM })
  t.after(() => app.close())
  t.same(await app.sms.send({ to: '+15551234567', body: 'hi' }), { sid: 'SMstub', status: 'queued', to: '+15551234567', from: null })
  t.same(calls, [{ to: '+15551234567', body: 'hi', from: FROM }])
})

t.test('a failed load of the twilio package is retried on the next send', async (t) => {
  let loads = 0
  const fake = await startFakeTwilio()
  t.after(() => fake.close())
  const real = (await import('twilio')).default as TwilioModule
  const send = createSender({
    accountSid: ACCOUNT_SID,
    authToken: TOKEN,
    from: FROM,
    httpClient: fake.httpClient(real),
    loadTwilio: async () => {
      if (++loads === 1) throw new Error('cannot load')
      return real
    }
  })
  await t.rejects(send({ to: '+15551234567', body: 'hi' }), /cannot load/)
  t.equal((await send({ to: '+15551234567', body: 'hi' })).status, 'queued')
  t.equal(loads, 2)
})

t.test('the auth token never reaches the logs: refused webhooks, sends, Twilio errors', async (t) => {
  const logs = logCapture()
  const fake = await startFakeTwilio((req) => req.form.Body === 'fail'
    ? { status: 401, body: { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 } }
    : undefined)
  t.after(() => fake.close())
  const app = Fastify({ logger: { ...loggerOptions('trace'), stream: logs.stream } as never })
  await app.register(smsGateway, { authToken: [TOKEN, 'second-token-secret'], accountSid: ACCOUNT_SID, from: FROM, httpClient: fake.httpClient })
  app.post('/notify', async (request) => await app.sms.send({ to: '+15551234567', body: (request.body as { body: string }).body }))
  await app.ready()
  t.after(() => app.close())

  t.equal((await post(app, { params: inboundParams() })).statusCode, 200)
  t.equal((await post(app, { params: inboundParams(), token: 'wrong' })).statusCode, 403)
  t.equal((await post(app, { params: inboundParams(), signature: null })).statusCode, 403)
  t.equal((await app.inject({ method: 'POST', url: '/notify', payload: { body: 'ok' } })).statusCode, 200)
  const failed = await app.inject({ method: 'POST', url: '/notify', payload: { body: 'fail' } })
  t.equal(failed.statusCode, 502)
  t.equal(failed.json().message, 'Twilio refused the message: Authenticate')
  await fake.close()
  t.equal((await app.inject({ method: 'POST', url: '/notify', payload: { body: 'down' } })).statusCode, 502)

  const text = logs.text()
  t.match(text, /X-Twilio-Signature does not match/, 'the refusal was logged')
  t.match(text, /SmsSendError/, 'the send errors were logged')
  t.match(text, /"url":"http:\/\/localhost:80\/webhooks\/sms"/, 'with the URL that was checked')
  for (const secret of [TOKEN, 'second-token-secret', Buffer.from(`${ACCOUNT_SID}:${TOKEN}`).toString('base64')]) {
    t.notOk(text.includes(secret), 'a secret is absent from the logs')
  }
})
