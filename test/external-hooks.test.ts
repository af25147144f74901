import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { Webhook as StandardWebhook } from 'standardwebhooks'
import { Webhook as SvixWebhook } from 'svix'
import { externalGateway, type ExternalHookContext, type ExternalOptions } from '../plugins/external.js'
import { MemoryDedupeStore, type WaitResult } from '../lib/stores/dedupe.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'
import { logCapture } from './helpers/app.js'
import { GatewayErrors } from '../lib/errors.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests walk JSON documents (answers, the OpenAPI document) loosely
type Json = any

const observed = new Set<string>()
const GITHUB = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const GITHUB_NEXT = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'
const BILLING = 'whsec_dGhpcyBpcyB0aGUgYmlsbGluZyBzZWNyZXQ='

interface Sent { id?: string, timestamp?: number, body?: string, secret?: string, signature?: string, headers?: Record<string, string> }

async function start (t: Test, options: ExternalOptions = {}) {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream }, routerOptions: { maxParamLength: 512 } })
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url?.startsWith('/api/') === true) observed.add(`${request.method} ${request.routeOptions.url} ${reply.statusCode}`)
  })
  await app.register(externalGateway, {
    apiKeys: { alpha: 'alpha-key' },
    webhookSecrets: { github: [GITHUB, GITHUB_NEXT], billing: BILLING },
    ...options
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  let seq = 0
  /** sends a webhook signed with our own signer unless `signature` is given */
  async function send (source: string, sent: Sent = {}) {
    const id = sent.id ?? `msg_${++seq}_${Date.now()}`
    const timestamp = sent.timestamp ?? Math.floor(Date.now() / 1000)
    const body = sent.body ?? JSON.stringify({ type: 'push', n: seq })
    const signature = sent.signature ?? new StandardWebhook(sent.secret ?? GITHUB).sign(id, new Date(timestamp * 1000), body)
    const headers = sent.headers ?? {
      'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature
    }
    const res = await fetch(`${base}/api/hooks/${source}`, { method: 'POST', headers, body })
    const text = await res.text()
    let json: Json
    try { json = JSON.parse(text) } catch { json = undefined }
    return { status: res.status, json, id }
  }
  return { app, base, logs, send }
}

const encoder: Encoder<RoomEvent> = { name: 'test', encode: (ev) => ev }
function member (app: FastifyInstance, room: string) {
  const received: RoomEvent[] = []
  const m: Member<RoomEvent> & { received: RoomEvent[] } = {
    id: app.rooms.nextMemberId(), user: null, transport: 'test', encoder, received, deliver (ev) { received.push(ev) }
  }
  app.rooms.join(room, m)
  return m
}

async function within<T> (promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

t.test('a signed webhook is verified, handled and published as hook.<source> to hooks:<source>', async (t) => {
  const seen: Array<[unknown, ExternalHookContext]> = []
  const { app, send } = await start(t, { on: { github: (payload, ctx) => { seen.push([payload, ctx]) } } })
  const m = member(app, 'hooks:github')
  const res = await send('github', { id: 'msg_good', body: '{"action":"opened","number":7}' })
  t.equal(res.status, 200)
  t.same(res.json, { received: true })
  t.equal(m.received.length, 1)
  t.match(m.received[0], { room: 'hooks:github', event: 'hook.github', data: { action: 'opened', number: 7 } })
  t.equal(seen.length, 1)
  t.same(seen[0][0], { action: 'opened', number: 7 })
  t.match(seen[0][1], { source: 'github', webhookId: 'msg_good', timestamp: Number })
  t.equal(seen[0][1].rawBody.toString(), '{"action":"opened","number":7}')
})

t.test('webhooks signed by the standardwebhooks and svix packages are accepted', async (t) => {
  const { app, send } = await start(t)
  const m = member(app, 'hooks:billing')
  const now = new Date()
  const body = JSON.stringify({ type: 'invoice.paid', customer: 'Zoë', amount: 4200 })
  const fromStandard = await send('billing', { id: 'msg_std', body, signature: new StandardWebhook(BILLING).sign('msg_std', now, body), timestamp: Math.floor(now.getTime() / 1000) })
  t.equal(fromStandard.status, 200)
  const fromSvix = await send('billing', { id: 'msg_svix', body, signature: new SvixWebhook(BILLING).sign('msg_svix', now, body), timestamp: Math.floor(now.getTime() / 1000) })
  t.equal(fromSvix.status, 200)
  t.equal(m.received.length, 2)
  t.same(m.received[1].data, JSON.parse(body))
})

t.test('Svix\'s svix-* header names are accepted too', async (t) => {
  const { app, send } = await start(t)
  const m = member(app, 'hooks:billing')
  const now = new Date()
  const body = '{"ok":true}'
  const res = await send('billing', {
    body,
    headers: { 'content-type': 'application/json', 'svix-id': 'msg_branded', 'svix-timestamp': String(Math.floor(now.getTime() / 1000)), 'svix-signature': new SvixWebhook(BILLING).sign('msg_branded', now, body) }
  })
  t.equal(res.status, 200)
  t.equal(m.received.length, 1)
})

t.test('both secrets of a rotating source verify', async (t) => {
  const { app, send } = await start(t)
  const m = member(app, 'hooks:github')
  t.equal((await send('github', { secret: GITHUB })).status, 200)
  t.equal((await send('github', { secret: GITHUB_NEXT })).status, 200)
  // a sender mid-rotation signs with both; one known secret is enough
  const id = 'msg_both'
  const now = new Date()
  const body = '{}'
  const both = `${new StandardWebhook(BILLING).sign(id, now, body)} ${new StandardWebhook(GITHUB_NEXT).sign(id, now, body)}`
  t.equal((await send('github', { id, body, signature: both, timestamp: Math.floor(now.getTime() / 1000) })).status, 200)
  t.equal(m.received.length, 3)
})

t.test('a bad signature answers 401 and publishes nothing', async (t) => {
  let ran = 0
  const { app, send } = await start(t, { on: { github: () => { ran++ } } })
  const m = member(app, 'hooks:github')
  const wrongSecret = await send('github', { secret: BILLING })
  t.equal(wrongSecret.status, 401)
  t.match(wrongSecret.json, { statusCode: 401, error: 'Unauthorized', code: 'GW_HOOK_UNVERIFIED', message: /no webhook-signature matches/ })
  const now = Math.floor(Date.now() / 1000)
  const tampered = await send('github', { id: 'msg_t', body: '{"amount":1}', signature: new StandardWebhook(GITHUB).sign('msg_t', new Date(now * 1000), '{"amount":1000}'), timestamp: now })
  t.equal(tampered.status, 401)
  const missing = await send('github', { headers: { 'content-type': 'application/json' } })
  t.equal(missing.status, 401)
  t.match(missing.json.message, /missing webhook-id/)
  t.equal(m.received.length, 0)
  t.equal(ran, 0)
})

t.test('a stale or future timestamp answers 401', async (t) => {
  const { app, send } = await start(t)
  const m = member(app, 'hooks:github')
  const now = Math.floor(Date.now() / 1000)
  const stale = await send('github', { timestamp: now - 600 })
  t.equal(stale.status, 401)
  t.match(stale.json.message, /more than 300 s old/)
  const future = await send('github', { timestamp: now + 600 })
  t.equal(future.status, 401)
  t.match(future.json.message, /more than 300 s in the future/)
  t.equal((await send('github', { timestamp: now - 240 })).status, 200, 'within the tolerance')
  t.equal(m.received.length, 1)
})

t.test('a duplicate webhook-id answers 200 and runs and publishes nothing', async (t) => {
  let ran = 0
  const { app, send } = await start(t, { on: { github: () => { ran++ } } })
  const m = member(app, 'hooks:github')
  t.same((await send('github', { id: 'msg_dup' })).json, { received: true })
  // a retry is signed again with a new timestamp, but carries the same id
  const retry = await send('github', { id: 'msg_dup', timestamp: Math.floor(Date.now() / 1000) - 10 })
  t.equal(retry.status, 200)
  t.same(retry.json, { received: true, duplicate: true })
  t.equal(ran, 1)
  t.equal(m.received.length, 1)
  t.equal((await send('billing', { id: 'msg_dup', secret: BILLING })).json.duplicate, undefined, 'ids are per source')
})

t.test('an unknown source answers 404', async (t) => {
  const { send } = await start(t)
  const res = await send('gitlab')
  t.equal(res.status, 404)
  t.match(res.json, { statusCode: 404, error: 'Not Found', code: 'GW_HOOK_UNKNOWN_SOURCE', message: 'no webhook source "gitlab"' })
})

t.test('a handler that throws answers 500 and the retry runs it again', async (t) => {
  let attempts = 0
  const { app, send, logs } = await start(t, {
    on: {
      github: () => {
        attempts++
        if (attempts === 1) throw new Error('database is down')
      }
    }
  })
  const m = member(app, 'hooks:github')
  const failed = await send('github', { id: 'msg_retry' })
  t.equal(failed.status, 500)
  t.match(failed.json, { statusCode: 500, code: 'GW_HOOK_HANDLER', message: /not marked handled/ })
  t.notOk(failed.json.message.includes('database is down'), 'the handler\'s error stays in the logs')
  t.match(logs.text(), /database is down/)
  t.equal(m.received.length, 0, 'nothing published for a failed handler')
  const retried = await send('github', { id: 'msg_retry' })
  t.same(retried.json, { received: true })
  t.equal(attempts, 2)
  t.equal(m.received.length, 1)
})

t.test('a concurrent duplicate waits for the first delivery and is told it was handled', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let entered!: () => void
  const started = new Promise<void>((resolve) => { entered = resolve })
  let ran = 0
  class WatchedStore extends MemoryDedupeStore {
    private waiting!: () => void
    readonly waited = new Promise<void>((resolve) => { this.waiting = resolve })
    override async wait (key: string, timeoutMs: number): Promise<WaitResult> {
      this.waiting()
      return await super.wait(key, timeoutMs)
    }
  }
  const hookStore = new WatchedStore()
  const { send } = await start(t, { hookStore, on: { github: async () => { ran++; entered(); await gate } } })
  const now = Math.floor(Date.now() / 1000)
  const first = send('github', { id: 'msg_race', timestamp: now })
  await within(started, 'the first delivery')
  const second = send('github', { id: 'msg_race', timestamp: now })
  await within(hookStore.waited, 'the duplicate to wait')
  release()
  const [a, b] = await within(Promise.all([first, second]), 'both answers')
  t.same(a.json, { received: true })
  t.same(b.json, { received: true, duplicate: true })
  t.equal(ran, 1)
})

t.test('a duplicate still in flight after the wait answers 409', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let entered!: () => void
  const started = new Promise<void>((resolve) => { entered = resolve })
  const { send } = await start(t, { inFlightWaitMs: 30, on: { github: async () => { entered(); await gate } } })
  const first = send('github', { id: 'msg_slow' })
  await within(started, 'the first delivery')
  const second = await within(send('github', { id: 'msg_slow' }), 'the duplicate')
  t.equal(second.status, 409)
  t.match(second.json, { statusCode: 409, code: 'GW_HOOK_IN_PROGRESS' })
  release()
  t.equal((await first).status, 200)
})

t.test('several handlers of a source run in order before the event is published', async (t) => {
  const order: string[] = []
  const started = await start(t, {
    on: {
      github: [
        () => { order.push(`first:${started.app.rooms.size('hooks:github')}`) },
        async () => { order.push('second') }
      ]
    }
  })
  const app = started.app
  const m = member(app, 'hooks:github')
  app.externalHooks.on('github', () => { order.push(`third, published ${m.received.length}`) })
  t.equal((await started.send('github')).status, 200)
  t.same(order, ['first:1', 'second', 'third, published 0'])
  t.equal(m.received.length, 1)
})

t.test('handlers added with app.externalHooks.on run, and stop after removal', async (t) => {
  const { app, send } = await start(t)
  const got: unknown[] = []
  const off = app.externalHooks.on('billing', (payload) => { got.push(payload) })
  t.same(app.externalHooks.sources, ['github', 'billing'])
  await send('billing', { secret: BILLING, body: '{"n":1}' })
  off()
  await send('billing', { secret: BILLING, body: '{"n":2}' })
  t.same(got, [{ n: 1 }])
  t.throws(() => app.externalHooks.on('gitlab', () => {}), /no webhook secret for source "gitlab"/)
  t.throws(() => app.externalHooks.on('github', 'x' as Json), /must be a function/)
})

t.test('a body that is not JSON is published as text, any content type', async (t) => {
  const { app, send } = await start(t)
  const m = member(app, 'hooks:github')
  const now = Math.floor(Date.now() / 1000)
  const body = 'name=ann&age=3'
  const signature = new StandardWebhook(GITHUB).sign('msg_form', new Date(now * 1000), body)
  const res = await send('github', {
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'webhook-id': 'msg_form', 'webhook-timestamp': String(now), 'webhook-signature': signature }
  })
  t.equal(res.status, 200)
  t.equal(m.received[0].data, body)
  const noType = await send('github', {
    body: '[1,2]',
    headers: { 'webhook-id': 'msg_no_type', 'webhook-timestamp': String(now), 'webhook-signature': new StandardWebhook(GITHUB).sign('msg_no_type', new Date(now * 1000), '[1,2]') }
  })
  t.equal(noType.status, 200, 'no content type at all')
  t.same(m.received[1].data, [1, 2])
  const empty = await send('github', {
    body: '',
    headers: { 'webhook-id': 'msg_empty', 'webhook-timestamp': String(now), 'webhook-signature': new StandardWebhook(GITHUB).sign('msg_empty', new Date(now * 1000), '') }
  })
  t.equal(empty.status, 200, 'an empty body')
  t.equal(m.received[2].data, null)
})

t.test('a webhook over the body limit answers 413', async (t) => {
  const { send } = await start(t, { bodyLimit: 1024 })
  const res = await send('github', { body: JSON.stringify({ blob: 'x'.repeat(2000) }) })
  t.equal(res.status, 413)
  t.match(res.json, { statusCode: 413 })
})

t.test('webhook senders are rate limited by address', async (t) => {
  const { send } = await start(t, { rateLimit: { max: 1, timeWindowMs: 60_000 } })
  t.equal((await send('github')).status, 200)
  const res = await send('github')
  t.equal(res.status, 429)
})

t.test('webhook secrets and signatures never reach the logs', async (t) => {
  const { send, logs } = await start(t)
  const res = await send('github', { id: 'msg_log' })
  await send('github', { secret: BILLING })
  t.equal(res.status, 200)
  const text = logs.text()
  for (const secret of [GITHUB, GITHUB_NEXT, BILLING, GITHUB.slice(6)]) t.notOk(text.includes(secret))
  t.notOk(/v1,[A-Za-z0-9+/=]{40,}/.test(text), 'no signature logged')
  t.match(text, /"webhookId":"msg_log"/)
  t.match(text, /"reason":"bad-signature"/)
})

t.test('a concurrent duplicate of a delivery whose handler fails answers 500 too, and the retry runs it', async (t) => {
  let attempts = 0
  let fail!: (err: Error) => void
  let entered!: () => void
  const started = new Promise<void>((resolve) => { entered = resolve })
  class WatchedStore extends MemoryDedupeStore {
    private waiting!: () => void
    readonly waited = new Promise<void>((resolve) => { this.waiting = resolve })
    override async wait (key: string, timeoutMs: number): Promise<WaitResult> {
      this.waiting()
      return await super.wait(key, timeoutMs)
    }
  }
  const hookStore = new WatchedStore()
  const { send, app } = await start(t, {
    hookStore,
    on: { github: async () => { if (++attempts === 1) { entered(); await new Promise<void>((_resolve, reject) => { fail = reject }) } } }
  })
  const m = member(app, 'hooks:github')
  const now = Math.floor(Date.now() / 1000)
  const first = send('github', { id: 'msg_race_fail', timestamp: now })
  await within(started, 'the first delivery')
  const second = send('github', { id: 'msg_race_fail', timestamp: now })
  await within(hookStore.waited, 'the duplicate to wait')
  fail(new Error('database is down'))
  const [a, b] = await within(Promise.all([first, second]), 'both answers')
  t.equal(a.status, 500)
  t.match(b.json, { statusCode: 500, code: 'GW_HOOK_HANDLER' }, 'the waiter is told it was not handled')
  t.same((await send('github', { id: 'msg_race_fail', timestamp: now })).json, { received: true })
  t.equal(attempts, 2)
  t.equal(m.received.length, 1)
})

t.test('a handler past its time budget answers 500, aborts its signal, and is not marked handled', async (t) => {
  let aborted: unknown
  let attempts = 0
  const { send } = await start(t, {
    hookHandlerTimeoutMs: 30,
    on: {
      github: async (_payload, ctx: ExternalHookContext) => {
        if (++attempts > 1) return
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        aborted = ctx.signal.reason
      }
    }
  })
  const slow = await send('github', { id: 'msg_budget' })
  t.equal(slow.status, 500)
  t.match(slow.json, { code: 'GW_HOOK_TIMEOUT', message: /30 ms budget/ })
  t.match(aborted, { code: 'GW_HOOK_TIMEOUT' })
  t.same((await send('github', { id: 'msg_budget' })).json, { received: true })
})

t.test('a dedupe store that is down answers 503 and runs nothing; outcomes are counted for provider hooks', async (t) => {
  const hookStore = new MemoryDedupeStore()
  let runs = 0
  const { send, app } = await start(t, { hookStore, on: { github: () => { runs++ } } })
  await send('github', { id: 'msg_counted' })
  await send('github', { id: 'msg_counted' })
  await send('github', { id: 'msg_counted', secret: BILLING })
  hookStore.claim = async () => { throw new GatewayErrors.STORE_UNAVAILABLE('redis down') }
  const down = await send('github', { id: 'msg_store_down' })
  t.equal(down.status, 503)
  t.match(down.json, { statusCode: 503, code: 'GW_STORE_UNAVAILABLE' })
  t.equal(runs, 1)
  t.same(app.rooms.counters.webhooks.hooks, { handled: 1, duplicate: 1, rejected: 1, failed: 1 })
})

t.test('the OpenAPI document lists every status of the webhook route, each seen here', async (t) => {
  const { base } = await start(t)
  const doc = await (await fetch(`${base}/api/openapi.json`)).json() as Json
  const documented = Object.keys(doc.paths['/api/hooks/{source}'].post.responses).map((s) => `POST /api/hooks/:source ${s}`)
  const seen = [...observed].filter((s) => s.startsWith('POST /api/hooks/'))
  t.same([...seen].sort(), [...documented].sort())
})
