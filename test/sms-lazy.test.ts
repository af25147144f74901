import t from 'tap'
import { createRequire } from 'node:module'
import { ACCOUNT_SID, inboundParams, post, smsApp, startFakeTwilio } from './helpers/fake-twilio.js'

// This file must not import 'twilio' itself (only its webhook module, through the helpers): it checks that the
// gateway does not load the REST client before the first send. Node's CommonJS module cache is the evidence: every
// file of the twilio package that was loaded, in this process, has an entry there.
const cache = createRequire(import.meta.url).cache
const loaded = (file: RegExp) => Object.keys(cache).some((path) => file.test(path))
const WEBHOOKS = /node_modules[\\/]twilio[\\/]lib[\\/]webhooks[\\/]webhooks\.js$/
const REST_CLIENT = /node_modules[\\/]twilio[\\/]lib[\\/]rest[\\/]Twilio\.js$/
const PACKAGE_MAIN = /node_modules[\\/]twilio[\\/]lib[\\/]index\.js$/

t.test('registering the gateway and verifying webhooks loads twilio\'s webhook module only; the first send loads the REST client', async (t) => {
  const fake = await startFakeTwilio()
  t.after(() => fake.close())
  const app = await smsApp({ accountSid: ACCOUNT_SID, from: '+15557654321', httpClient: fake.httpClient })
  t.after(() => app.close())
  t.equal((await post(app, { params: inboundParams() })).statusCode, 200)

  t.ok(loaded(WEBHOOKS), 'the webhook validator is loaded (the cache does record twilio\'s files)')
  t.notOk(loaded(PACKAGE_MAIN), 'the twilio package entry is not loaded')
  t.notOk(loaded(REST_CLIENT), 'the REST client is not loaded')

  await app.sms.send({ to: '+15551234567', body: 'hi' })
  t.equal(fake.requests.length, 1)
  t.ok(loaded(PACKAGE_MAIN), 'the first send loaded the twilio package')
  t.ok(loaded(REST_CLIENT), 'and its REST client')
})
