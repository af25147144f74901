import t, { type Test } from 'tap'
import { GatewayErrors } from '../lib/errors.js'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { externalGateway, type ExternalOptions } from '../plugins/external.js'
import { MemoryDedupeStore, type WaitResult } from '../lib/stores/dedupe.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'
import { logCapture } from './helpers/app.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests walk JSON documents (answers, the OpenAPI document) loosely
type Json = any

// Every (route, method, status) this file sees through HTTP; the last test checks the OpenAPI document against it.
const observed = new Set<string>()
const ALPHA = 'alpha-key-5f2e1c9a7b3d'
const BETA = 'beta-key-0a9b8c7d6e5f'
const ORDERS = 'orders-key-1234567890'
const KEYS = { alpha: ALPHA, beta: BETA, orders: { key: ORDERS, rooms: ['orders:*'] } }

interface Call { key?: string, body?: unknown, raw?: string, headers?: Record<string, string> }

async function start (t: Test, options: ExternalOptions = {}, host?: (app: FastifyInstance) => void) {
  const logs = logCapture()
  // a host app as a user would write it: no redaction configured, most verbose level
  const app = Fastify({ logger: { level: 'trace', stream: logs.stream }, routerOptions: { maxParamLength: 512 } })
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url?.startsWith('/api/') === true) observed.add(`${request.method} ${request.routeOptions.url} ${reply.statusCode}`)
  })
  await app.register(externalGateway, { apiKeys: KEYS, ...options })
  host?.(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  async function call (method: string, path: string, { key, body, raw, headers = {} }: Call = {}) {
    const h: Record<string, string> = { ...headers }
    if (key !== undefined) h.authorization = `Bearer ${key}`
    let payload: string | undefined = raw
    if (body !== undefined) {
      payload = JSON.stringify(body)
      h['content-type'] ??= 'application/json'
    }
    const res = await fetch(base + path, { method, headers: h, body: payload })
    const text = await res.text()
    let json: Json
    try { json = JSON.parse(text) } catch { json = undefined }
    return { status: res.status, headers: res.headers, json, text }
  }
  return { app, base, logs, call }
}

const encoder: Encoder<RoomEvent> = { name: 'test', encode: (ev) => ev }
function member (app: FastifyInstance, room: string, user: string | null = null) {
  const received: RoomEvent[] = []
  const m: Member<RoomEvent> & { received: RoomEvent[] } = {
    id: app.rooms.nextMemberId(), user, transport: 'test', encoder, received,
    deliver (ev) { received.push(ev) }
  }
  app.rooms.join(room, m)
  return m
}

/** resolves when `promise` does, fails the test after `ms` instead of hanging */
async function within<T> (promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** publish gated until `open()`: lets a test hold a request in flight */
function gatePublish (app: FastifyInstance) {
  let open!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  let entered!: () => void
  const started = new Promise<void>((resolve) => { entered = resolve })
  let calls = 0
  const original = app.rooms.publish.bind(app.rooms)
  app.rooms.publish = (async (...args: Parameters<typeof original>) => {
    calls++
    entered()
    await gate
    return await original(...args)
  }) as typeof app.rooms.publish
  return { open, started, calls: () => calls }
}

/** a store that tells when a request starts waiting on another */
class WatchedStore extends MemoryDedupeStore {
  private waiting!: () => void
  readonly waited = new Promise<void>((resolve) => { this.waiting = resolve })
  override async wait (key: string, timeoutMs: number): Promise<WaitResult> {
    this.waiting()
    return await super.wait(key, timeoutMs)
  }
}

t.test('a service publishes to a room and every member receives the event', async (t) => {
  const { app, call } = await start(t)
  const a = member(app, 'orders:42', 'u1')
  const b = member(app, 'orders:42', 'u2')
  const res = await call('POST', '/api/rooms/orders:42/events', { key: ALPHA, body: { event: 'order.shipped', data: { carrier: 'ups' } } })
  t.equal(res.status, 202)
  t.match(res.json, { id: String, delivered: 2 })
  for (const m of [a, b]) {
    t.equal(m.received.length, 1)
    t.match(m.received[0], { id: res.json.id, room: 'orders:42', event: 'order.shipped', data: { carrier: 'ups' } })
  }
})

t.test('data may be left out and is published as null', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const res = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'ping' } })
  t.equal(res.status, 202)
  t.equal(m.received[0].data, null)
})

t.test('a 128-character room name works, percent-encoded or not', async (t) => {
  const { app, call } = await start(t)
  const room = `a:${'b@'.repeat(63)}`
  t.equal(room.length, 128)
  const m = member(app, room)
  t.equal((await call('POST', `/api/rooms/${room}/events`, { key: ALPHA, body: { event: 'e' } })).status, 202)
  t.equal((await call('POST', `/api/rooms/${encodeURIComponent(room)}/events`, { key: ALPHA, body: { event: 'e' } })).status, 202)
  t.equal(m.received.length, 2)
  const presence = await call('GET', `/api/rooms/${encodeURIComponent(room)}`, { key: ALPHA })
  t.same(presence.json, { room, members: 1, users: [] })
})

t.test('an invalid room name answers 400 and publishes nothing', async (t) => {
  const { call } = await start(t)
  for (const room of ['a%20b', 'x'.repeat(129), 'caf%C3%A9']) {
    const res = await call('POST', `/api/rooms/${room}/events`, { key: ALPHA, body: { event: 'e' } })
    t.equal(res.status, 400, room)
    t.match(res.json, { statusCode: 400, error: 'Bad Request', code: 'GW_INVALID_ROOM', message: /invalid room name/ })
  }
  const get = await call('GET', '/api/rooms/a%20b', { key: ALPHA })
  t.equal(get.status, 400)
})

t.test('an invalid body answers 400 listing every zod issue', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const res = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'has space', data: 1, extra: true } })
  t.equal(res.status, 400)
  t.match(res.json, { statusCode: 400, error: 'Bad Request', code: 'GW_INVALID_BODY' })
  t.match(res.json.message, /event: must be 1 to 128 characters/)
  t.match(res.json.message, /Unrecognized key: "extra"/)
  t.same(res.json.issues.map((i: Json) => i.path), [['event'], []])
  t.same(res.json.issues.map((i: Json) => i.code), ['invalid_format', 'unrecognized_keys'])
  const notObject = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: [1, 2] })
  t.equal(notObject.status, 400)
  t.match(notObject.json.issues, [{ path: [], code: 'invalid_type' }])
  const malformed = await call('POST', '/api/rooms/r/events', { key: ALPHA, raw: '{"event":', headers: { 'content-type': 'application/json' } })
  t.equal(malformed.status, 400)
  t.match(malformed.json, { statusCode: 400, error: 'Bad Request' })
  const empty = await call('POST', '/api/rooms/r/events', { key: ALPHA })
  t.equal(empty.status, 400, 'no body at all')
  t.equal(m.received.length, 0)
})

t.test('a body that is not JSON answers 415', async (t) => {
  const { call } = await start(t)
  const res = await call('POST', '/api/rooms/r/events', { key: ALPHA, raw: 'event=e', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(res.status, 415)
  t.match(res.json, { statusCode: 415, error: 'Unsupported Media Type' })
  const text = await call('POST', '/api/rooms/r/events', { key: ALPHA, raw: '{"event":"e"}', headers: { 'content-type': 'text/plain' } })
  t.equal(text.status, 415, 'text/plain too')
})

t.test('a body over the limit answers 413', async (t) => {
  const { app, call } = await start(t, { bodyLimit: 1024 })
  const m = member(app, 'r')
  const res = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e', data: 'x'.repeat(1024) } })
  t.equal(res.status, 413)
  t.match(res.json, { statusCode: 413, error: 'Payload Too Large' })
  t.equal((await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e', data: 'x'.repeat(900) } })).status, 202)
  t.equal(m.received.length, 1)
})

t.test('a request without a valid API key answers 401 and publishes nothing', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{}, /missing API key/],
    [{ authorization: `Bearer ${ALPHA}x` }, /unknown API key/],
    [{ authorization: `Bearer ${ALPHA.slice(0, -1)}` }, /unknown API key/],
    [{ authorization: `Basic ${Buffer.from(`alpha:${ALPHA}`).toString('base64')}` }, /must be Bearer/]
  ]
  for (const [headers, message] of cases) {
    for (const [method, path] of [['POST', '/api/rooms/r/events'], ['GET', '/api/rooms/r'], ['GET', '/api/rooms']]) {
      const res = await call(method, path, { headers, ...(method === 'POST' ? { body: { event: 'e' } } : {}) })
      t.equal(res.status, 401, `${method} ${path} ${JSON.stringify(headers)}`)
      t.match(res.json, { statusCode: 401, error: 'Unauthorized', message })
      t.equal(res.headers.get('www-authenticate'), 'Bearer')
    }
  }
  t.equal(m.received.length, 0)
})

t.test('a key limited to some rooms gets 403 elsewhere and sees only its rooms', async (t) => {
  const { app, call } = await start(t)
  member(app, 'orders:1')
  member(app, 'orders:1')
  member(app, 'billing:1')
  t.equal((await call('POST', '/api/rooms/orders:1/events', { key: ORDERS, body: { event: 'e' } })).status, 202)
  const denied = await call('POST', '/api/rooms/billing:1/events', { key: ORDERS, body: { event: 'e' } })
  t.equal(denied.status, 403)
  t.match(denied.json, { statusCode: 403, error: 'Forbidden', message: 'the API key orders may not use room billing:1' })
  t.equal((await call('GET', '/api/rooms/billing:1', { key: ORDERS })).status, 403)
  t.same((await call('GET', '/api/rooms', { key: ORDERS })).json, { rooms: [{ room: 'orders:1', members: 2 }] })
  t.same((await call('GET', '/api/rooms', { key: ALPHA })).json, { rooms: [{ room: 'billing:1', members: 1 }, { room: 'orders:1', members: 2 }] })
})

t.test('presence lists members and distinct users of a room', async (t) => {
  const { app, call } = await start(t)
  member(app, 'chat', 'ann')
  member(app, 'chat', 'ann')
  member(app, 'chat', 'bob')
  member(app, 'chat', null)
  const res = await call('GET', '/api/rooms/chat', { key: BETA })
  t.equal(res.status, 200)
  t.equal(res.json.room, 'chat')
  t.equal(res.json.members, 4)
  t.same([...res.json.users].sort(), ['ann', 'bob'])
  t.equal(res.headers.get('cache-control'), 'no-store')
  t.same((await call('GET', '/api/rooms/empty', { key: BETA })).json, { room: 'empty', members: 0, users: [] })
})

t.test('an Idempotency-Key repeat gets the first answer and publishes nothing', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const request = { key: ALPHA, body: { event: 'e', data: { a: 1, b: 2 } }, headers: { 'idempotency-key': 'order-7-shipped' } }
  const first = await call('POST', '/api/rooms/r/events', request)
  t.equal(first.status, 202)
  t.equal(first.headers.get('idempotency-replayed'), null)
  // the same request with its keys in another order is the same request
  const again = await call('POST', '/api/rooms/r/events', { ...request, body: { data: { b: 2, a: 1 }, event: 'e' } })
  t.equal(again.status, 202)
  t.same(again.json, first.json)
  t.equal(again.headers.get('idempotency-replayed'), 'true')
  t.equal(m.received.length, 1)
})

t.test('a concurrent repeat waits for the first request and gets its answer', async (t) => {
  const store = new WatchedStore()
  const { app, call } = await start(t, { store })
  const m = member(app, 'r')
  const gate = gatePublish(app)
  const request = { key: ALPHA, body: { event: 'e', data: 1 }, headers: { 'idempotency-key': 'k-concurrent' } }
  const first = call('POST', '/api/rooms/r/events', request)
  await within(gate.started, 'the first publish')
  const second = call('POST', '/api/rooms/r/events', request)
  await within(store.waited, 'the repeat to wait')
  gate.open()
  const [a, b] = await within(Promise.all([first, second]), 'both answers')
  t.equal(a.status, 202)
  t.equal(b.status, 202)
  t.same(b.json, a.json)
  t.equal(b.headers.get('idempotency-replayed'), 'true')
  t.equal(gate.calls(), 1, 'published once')
  t.equal(m.received.length, 1)
})

t.test('a repeat still waiting when the wait runs out answers 409', async (t) => {
  const { app, call } = await start(t, { inFlightWaitMs: 30 })
  const gate = gatePublish(app)
  const request = { key: ALPHA, body: { event: 'e' }, headers: { 'idempotency-key': 'k-slow' } }
  const first = call('POST', '/api/rooms/r/events', request)
  await within(gate.started, 'the first publish')
  const second = await within(call('POST', '/api/rooms/r/events', request), 'the repeat')
  t.equal(second.status, 409)
  t.match(second.json, { statusCode: 409, error: 'Conflict', message: /still running/ })
  gate.open()
  t.equal((await first).status, 202)
})

t.test('the same Idempotency-Key with a different body answers 422', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const headers = { 'idempotency-key': 'k-reused' }
  t.equal((await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e', data: 1 }, headers })).status, 202)
  const other = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e', data: 2 }, headers })
  t.equal(other.status, 422)
  t.match(other.json, { statusCode: 422, code: 'GW_IDEMPOTENCY_MISMATCH', message: /different request/ })
  const otherRoom = await call('POST', '/api/rooms/s/events', { key: ALPHA, body: { event: 'e', data: 1 }, headers })
  t.equal(otherRoom.status, 422, 'another room is another request')
  t.equal(m.received.length, 1)
})

t.test('Idempotency-Keys of different API keys do not collide', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const headers = { 'idempotency-key': 'shared' }
  const a = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e', data: 1 }, headers })
  const b = await call('POST', '/api/rooms/r/events', { key: BETA, body: { event: 'e', data: 2 }, headers })
  t.equal(a.status, 202)
  t.equal(b.status, 202)
  t.not(a.json.id, b.json.id)
  t.equal(b.headers.get('idempotency-replayed'), null)
  t.equal(m.received.length, 2)
})

t.test('a malformed Idempotency-Key answers 400', async (t) => {
  const { call } = await start(t)
  const res = await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e' }, headers: { 'idempotency-key': 'x'.repeat(256) } })
  t.equal(res.status, 400)
  t.match(res.json, { code: 'GW_INVALID_IDEMPOTENCY_KEY' })
})

t.test('a failed publish answers 500 and its Idempotency-Key can be retried', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const original = app.rooms.publish.bind(app.rooms)
  app.rooms.publish = (() => { throw new Error('bus down') }) as typeof app.rooms.publish
  const request = { key: ALPHA, body: { event: 'e' }, headers: { 'idempotency-key': 'k-retry' } }
  const failed = await call('POST', '/api/rooms/r/events', request)
  t.equal(failed.status, 500)
  t.match(failed.json, { statusCode: 500, error: 'Internal Server Error' })
  app.rooms.publish = original
  const retried = await call('POST', '/api/rooms/r/events', request)
  t.equal(retried.status, 202)
  t.equal(retried.headers.get('idempotency-replayed'), null, 'the failure was not stored')
  t.equal(m.received.length, 1)
})

t.test('a publish the bus cannot take answers 503 and can be retried with its Idempotency-Key', async (t) => {
  const { app, call } = await start(t)
  const m = member(app, 'r')
  const original = app.rooms.publish.bind(app.rooms)
  app.rooms.publish = (() => Promise.reject(new GatewayErrors.BUS_UNAVAILABLE('redis is not connected'))) as typeof app.rooms.publish
  const request = { key: ALPHA, body: { event: 'e' }, headers: { 'idempotency-key': 'k-503' } }
  const failed = await call('POST', '/api/rooms/r/events', request)
  t.equal(failed.status, 503, JSON.stringify(failed.json))
  t.match(failed.json, { statusCode: 503, code: 'GW_BUS_UNAVAILABLE' })
  app.rooms.publish = original
  t.equal((await call('POST', '/api/rooms/r/events', request)).status, 202)
  t.equal(m.received.length, 1)
})

t.test('a failing registry answers 500 on presence and listing', async (t) => {
  const { app, call } = await start(t)
  app.rooms.presence = () => Promise.reject(new Error('redis down'))
  app.rooms.list = () => Promise.reject(new Error('redis down'))
  for (const path of ['/api/rooms/r', '/api/rooms']) {
    const res = await call('GET', path, { key: ALPHA })
    t.equal(res.status, 500, path)
    t.match(res.json, { statusCode: 500, error: 'Internal Server Error' })
  }
})

t.test('the rate limit answers 429 with Retry-After per API key and recovers after the window', async (t) => {
  // a window long enough that the three requests below fall in one, even on a loaded machine
  const { call } = await start(t, { rateLimit: { max: 2, timeWindowMs: 3000 } })
  const publish = (key: string) => call('POST', '/api/rooms/r/events', { key, body: { event: 'e' } })
  t.equal((await publish(ALPHA)).status, 202)
  t.equal((await publish(ALPHA)).status, 202)
  const limited = await publish(ALPHA)
  t.equal(limited.status, 429)
  t.match(limited.json, { statusCode: 429, error: 'Too Many Requests', code: 'GW_RATE_LIMITED', message: /rate limit exceeded/ })
  t.match(limited.headers.get('retry-after'), /^\d+$/)
  t.equal((await call('GET', '/api/rooms/r', { key: ALPHA })).status, 429, 'one budget for every route')
  t.equal((await publish(BETA)).status, 202, 'another key has its own budget')
  let status = limited.status
  for (let i = 0; i < 400 && status === 429; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    status = (await publish(ALPHA)).status
  }
  t.equal(status, 202, 'the key publishes again once the window has passed')
})

t.test('requests without a valid key are rate limited by address', async (t) => {
  const { call } = await start(t, { rateLimit: { max: 2, timeWindowMs: 60_000 } })
  t.equal((await call('GET', '/api/rooms', { key: 'guess-1' })).status, 401)
  t.equal((await call('GET', '/api/rooms', { key: 'guess-2' })).status, 401)
  const res = await call('GET', '/api/rooms', { key: 'guess-3' })
  t.equal(res.status, 429)
  t.ok(res.headers.get('retry-after'))
  t.equal((await call('GET', '/api/openapi.json')).status, 429, 'the same address, the same budget')
  t.equal((await call('GET', '/api/rooms', { key: ALPHA })).status, 200, 'a valid key is counted under its own name')
})

t.test('API keys never reach the logs; their names do', async (t) => {
  const { call, logs } = await start(t)
  await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e' } })
  await call('GET', '/api/rooms/r', { key: ORDERS })
  await call('GET', '/api/rooms', { key: 'wrong-key-that-is-secret-too' })
  await call('POST', '/api/rooms/r/events', { key: BETA, body: { event: 'bad event' } })
  await call('POST', '/api/rooms/x y/events', { key: BETA, body: { event: 'e' } })
  const text = logs.text()
  for (const secret of [ALPHA, BETA, ORDERS, 'wrong-key-that-is-secret-too']) t.notOk(text.includes(secret), 'no key in the logs')
  const completed = logs.lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'request completed')
  t.same(completed.map((line) => line.apiKey), ['alpha', 'orders', undefined, 'beta', 'beta'], 'each request is logged with its key name')
})

t.test('a host JSON route outside /api is unaffected', async (t) => {
  const { call } = await start(t, { rateLimit: { max: 1, timeWindowMs: 60_000 } }, (app) => {
    app.post('/host/echo', async (request) => ({ got: request.body, apiKeyName: request.apiKeyName }))
  })
  for (let i = 0; i < 3; i++) {
    const res = await call('POST', '/host/echo', { body: { a: [1, 2] }, key: ALPHA })
    t.equal(res.status, 200, 'not rate limited, not authenticated by the gateway')
    t.same(res.json, { got: { a: [1, 2] }, apiKeyName: null })
    t.equal(res.headers.get('x-ratelimit-limit'), null)
  }
  const text = await call('POST', '/host/echo', { raw: 'abc', headers: { 'content-type': 'text/plain' } })
  t.same(text.json, { got: 'abc', apiKeyName: null }, 'the host keeps its text/plain parser')
  const binary = await call('POST', '/host/echo', { raw: 'abc', headers: { 'content-type': 'application/octet-stream' } })
  t.equal(binary.status, 415, 'the webhook route\'s catch-all body parser stays in its scope')
  const malformed = await call('POST', '/host/echo', { raw: '{', headers: { 'content-type': 'application/json' } })
  t.equal(malformed.status, 400)
})

t.test('the API mounts at another base path', async (t) => {
  const { call } = await start(t, { basePath: '/v2/realtime' })
  t.equal((await call('POST', '/v2/realtime/rooms/r/events', { key: ALPHA, body: { event: 'e' } })).status, 202)
  t.equal((await call('POST', '/api/rooms/r/events', { key: ALPHA, body: { event: 'e' } })).status, 404)
  const doc = await call('GET', '/v2/realtime/openapi.json')
  t.ok(doc.json.paths['/v2/realtime/rooms/{room}/events'])
})

t.test('the API mounts at the root with basePath /', async (t) => {
  const app = Fastify({ routerOptions: { maxParamLength: 512 } })
  t.after(() => app.close())
  await app.register(externalGateway, { apiKeys: KEYS, basePath: '/' })
  const res = await app.inject({ method: 'POST', url: '/rooms/r/events', headers: { authorization: `Bearer ${ALPHA}` }, payload: { event: 'e' } })
  t.equal(res.statusCode, 202)
  t.ok(JSON.parse((await app.inject('/openapi.json')).body).paths['/rooms/{room}/events'])
})

t.test('an app with Fastify\'s default maxParamLength is warned at start', async (t) => {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.after(() => app.close())
  await app.register(externalGateway, { apiKeys: KEYS, openapi: false })
  await app.ready()
  t.match(logs.text(), /maxParamLength/)
  t.equal((await app.inject('/api/openapi.json')).statusCode, 404, 'openapi: false serves no document')
})

t.test('bad options are refused at register, naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ apiKeys: { 'bad name': 'k' } }, /apiKeys/],
    [{ apiKeys: { a: 'same', b: 'same' } }, /apiKeys: the API keys a and b are the same key/],
    [{ webhookSecrets: { gh: 'not-a-secret!' } }, /webhookSecrets\.gh/],
    [{ on: { gh: () => {} } }, /on: no webhook secret for source "gh"/],
    [{ on: { gh: 'nope' } }, /on\.gh/],
    [{ basePath: 'api/' }, /basePath/],
    [{ rateLimit: { max: 0 } }, /rateLimit\.max/],
    [{ store: {} }, /store: must implement the DedupeStore/],
    [{ apiKey: {} }, /unknown option "apiKey"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(externalGateway, options as ExternalOptions) }, message)
    await app.close()
  }
})

t.test('the OpenAPI document is valid OpenAPI 3.1 and lists every route and status seen here', async (t) => {
  const { call } = await start(t, { webhookSecrets: { github: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } })
  const res = await call('GET', '/api/openapi.json')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^application\/json/)
  const doc = res.json
  t.equal(doc.openapi, '3.1.0')
  t.match(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' })
  t.same(doc.paths['/api/rooms'].get.security, [{ bearer: [] }])
  t.same(checkOpenApi(doc), [], 'structurally valid')
  t.match(doc.components.schemas.PublishBody, {
    type: 'object', required: ['event'], additionalProperties: false, properties: { event: { type: 'string', pattern: String } }
  }, 'the body schema comes from zod')
  t.same(doc.paths['/api/hooks/{source}'].post.parameters[0].schema.enum, ['github'])

  const documented = new Set<string>()
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    for (const [method, operation] of Object.entries<Json>(item)) {
      for (const status of Object.keys(operation.responses)) {
        documented.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')} ${status}`)
      }
    }
  }
  for (const seen of observed) t.ok(documented.has(seen), `documented: ${seen}`)
  // and the other way round for the routes of this file (the webhook route has its own test file)
  for (const listed of documented) {
    if (!listed.includes('/hooks/')) t.ok(observed.has(listed), `exercised through HTTP: ${listed}`)
  }
})

/** The OpenAPI 3.1 rules this document could break (from the spec's schema): object fields, $refs, parameters. */
function checkOpenApi (doc: Json): string[] {
  const problems: string[] = []
  const only = (where: string, value: Json, allowed: string[]) => {
    for (const key of Object.keys(value)) if (!allowed.includes(key) && !key.startsWith('x-')) problems.push(`${where}: unexpected field ${key}`)
  }
  const resolve = (ref: string) => ref.slice(2).split('/').reduce((node: Json, part) => node?.[part], doc)
  const refs = (node: Json, where: string) => {
    if (node === null || typeof node !== 'object') return
    if (typeof node.$ref === 'string' && resolve(node.$ref) === undefined) problems.push(`${where}: unresolved ${node.$ref}`)
    for (const [k, v] of Object.entries(node)) refs(v, `${where}/${k}`)
  }
  only('root', doc, ['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags', 'externalDocs'])
  if (typeof doc.info?.title !== 'string' || typeof doc.info?.version !== 'string') problems.push('info needs title and version')
  only('info', doc.info, ['title', 'summary', 'description', 'termsOfService', 'contact', 'license', 'version'])
  for (const name of Object.keys(doc.components.schemas)) if (!/^[a-zA-Z0-9._-]+$/.test(name)) problems.push(`schema name ${name}`)
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path}`)
    for (const [method, op] of Object.entries<Json>(item)) {
      const where = `${method} ${path}`
      if (!['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'].includes(method)) problems.push(`${where}: method`)
      only(where, op, ['tags', 'summary', 'description', 'externalDocs', 'operationId', 'parameters', 'requestBody', 'responses', 'callbacks', 'deprecated', 'security', 'servers'])
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      for (const p of op.parameters ?? []) {
        only(`${where} parameter ${p.name}`, p, ['name', 'in', 'description', 'required', 'deprecated', 'schema', 'content', 'style', 'explode', 'example', 'examples'])
        if (!['query', 'header', 'path', 'cookie'].includes(p.in) || typeof p.name !== 'string' || p.schema === undefined) problems.push(`${where}: parameter ${p.name}`)
        if (p.in === 'path' && (p.required !== true || !templated.includes(p.name))) problems.push(`${where}: path parameter ${p.name}`)
      }
      for (const name of templated) if (!(op.parameters ?? []).some((p: Json) => p.in === 'path' && p.name === name)) problems.push(`${where}: {${name}} undeclared`)
      if (op.requestBody !== undefined) only(`${where} requestBody`, op.requestBody, ['description', 'content', 'required'])
      if (Object.keys(op.responses).length === 0) problems.push(`${where}: no responses`)
      for (const [status, response] of Object.entries<Json>(op.responses)) {
        if (!/^[1-5](?:[0-9]{2}|XX)$/.test(status)) problems.push(`${where}: status ${status}`)
        only(`${where} ${status}`, response, ['description', 'headers', 'content', 'links'])
        if (typeof response.description !== 'string') problems.push(`${where} ${status}: description`)
        for (const [name, header] of Object.entries<Json>(response.headers ?? {})) only(`${where} ${status} header ${name}`, header, ['description', 'required', 'deprecated', 'schema', 'content', 'style', 'explode', 'example', 'examples'])
      }
      for (const requirement of op.security ?? []) for (const scheme of Object.keys(requirement)) if (doc.components.securitySchemes[scheme] === undefined) problems.push(`${where}: security ${scheme}`)
    }
  }
  refs(doc, '#')
  return problems
}
