import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import { Webhook as SvixWebhook } from 'svix'
import { buildTestApp } from './helpers/app.js'
import { loadConfig } from '../lib/config.js'
import { buildApp } from '../server.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests walk JSON documents (answers, the OpenAPI document) loosely
type Json = any

const OPS_KEY = 'ops-0123456789abcdef'
const CRM_KEY = 'crm-fedcba9876543210'
const SECRET_OLD = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const SECRET_NEW = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'

async function serve (t: Test, env: Record<string, string>) {
  const built = await buildTestApp({ GATEWAYS: 'external', ...env })
  t.after(() => built.app.close())
  await built.app.listen({ host: '127.0.0.1', port: 0 })
  return { ...built, base: `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}` }
}

const encoder: Encoder<RoomEvent> = { name: 'test', encode: (ev) => ev }

t.test('server.ts serves the external API from the environment', async (t) => {
  const { app, base, logs } = await serve(t, {
    EXTERNAL_API_KEYS: `ops=${OPS_KEY}, crm=${CRM_KEY}`,
    EXTERNAL_WEBHOOK_SECRETS: `billing=${SECRET_OLD},billing=${SECRET_NEW}`
  })
  const received: RoomEvent[] = []
  const member: Member<RoomEvent> = { id: app.rooms.nextMemberId(), user: 'u1', transport: 'test', encoder, deliver (ev) { received.push(ev) } }
  app.rooms.join('user:u1', member)
  app.rooms.join('hooks:billing', member)

  const publish = await fetch(`${base}/api/rooms/user:u1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CRM_KEY}`, 'content-type': 'application/json', 'idempotency-key': 'n-1' },
    body: JSON.stringify({ event: 'notification', data: { title: 'New Message!' } })
  })
  t.equal(publish.status, 202)
  const answer = await publish.json() as { id: string, delivered: number }
  t.equal(answer.delivered, 1)
  const repeat = await fetch(`${base}/api/rooms/user:u1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CRM_KEY}`, 'content-type': 'application/json', 'idempotency-key': 'n-1' },
    body: JSON.stringify({ event: 'notification', data: { title: 'New Message!' } })
  })
  t.same(await repeat.json(), answer, 'the idempotency store is wired')

  const presence = await fetch(`${base}/api/rooms/user:u1`, { headers: { authorization: `Bearer ${OPS_KEY}` } })
  t.same(await presence.json(), { room: 'user:u1', members: 1, users: ['u1'] })
  t.equal((await fetch(`${base}/api/rooms`)).status, 401)

  // the rotated-in secret verifies (both entries of the repeated source are kept)
  const now = new Date()
  const body = '{"type":"invoice.paid"}'
  const hook = await fetch(`${base}/api/hooks/billing`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new SvixWebhook(SECRET_NEW).sign('msg_1', now, body) },
    body
  })
  t.equal(hook.status, 200)
  t.same(received.map((ev) => ev.event), ['notification', 'hook.billing'])

  const long = `${'r'.repeat(128)}`
  t.equal((await fetch(`${base}/api/rooms/${long}`, { headers: { authorization: `Bearer ${OPS_KEY}` } })).status, 200, 'maxParamLength is raised')
  t.equal((await fetch(`${base}/health`)).status, 200)
  const doc = await (await fetch(`${base}/api/openapi.json`)).json() as Json
  t.equal(doc.openapi, '3.1.0')

  const text = logs.text()
  for (const secret of [OPS_KEY, CRM_KEY, SECRET_OLD, SECRET_NEW]) t.notOk(text.includes(secret), 'no secret in the logs')
  t.match(text, /"apiKey":"crm"/)
  t.notOk(/maxParamLength/.test(text), 'no maxParamLength warning for server.ts')
})

t.test('server.ts applies EXTERNAL_RATE_MAX, EXTERNAL_RATE_WINDOW_MS and EXTERNAL_BODY_LIMIT', async (t) => {
  const { base } = await serve(t, { EXTERNAL_API_KEYS: `ops=${OPS_KEY}`, EXTERNAL_RATE_MAX: '2', EXTERNAL_RATE_WINDOW_MS: '60000', EXTERNAL_BODY_LIMIT: '256' })
  const post = (data: string) => fetch(`${base}/api/rooms/r/events`, {
    method: 'POST', headers: { authorization: `Bearer ${OPS_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ event: 'e', data })
  })
  t.equal((await post('x'.repeat(300))).status, 413)
  t.equal((await post('ok')).status, 202)
  const limited = await post('ok')
  t.equal(limited.status, 429)
  t.ok(Number(limited.headers.get('retry-after')) > 0)
})

t.test('the external gateway does not start without EXTERNAL_API_KEYS', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'external' }), /EXTERNAL_API_KEYS: is required by the external gateway/)
})

t.test('a name repeated in EXTERNAL_API_KEYS stops start-up naming the variable', async (t) => {
  const config = loadConfig({ GATEWAYS: 'external', EXTERNAL_API_KEYS: 'ops=a,ops=b', LOG_LEVEL: 'silent' })
  await t.rejects(buildApp(config), /EXTERNAL_API_KEYS: the name ops appears twice/)
})

t.test('a malformed webhook secret stops start-up naming the variable', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'external', EXTERNAL_API_KEYS: 'a=b', EXTERNAL_WEBHOOK_SECRETS: 'billing=abc' }), /EXTERNAL_WEBHOOK_SECRETS: the entry for billing must start with whsec_/)
})
