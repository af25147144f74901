import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { rooms } from '../plugins/rooms.js'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import type { Authenticate } from '../lib/auth/user.js'
import type { SseStream } from '../lib/sse/stream.js'
import type { PublishResult } from '../lib/rooms/types.js'
import { connect, subscribe, type ConnectOptions, type GatewayClient, type GatewayError } from '../public/client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

// The client of public/client.js against the real ws and sse gateways, in Node (ws's WebSocket, Node's fetch):
// reconnect and resume, gaps, tokens, publish answers. The same file runs in the browser in client-browser.test.ts.

async function until (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface Built { app: FastifyInstance, base: string, down: { value: boolean } }

/**
 * ws and sse gateways on a loopback port; while `down.value` is true, new /ws connections are refused before the
 * upgrade (through the gateway's authenticate, as a server refuses them).
 */
async function build (t: Test, options: { historySize?: number, clientPublishRooms?: string[], auth?: boolean } = {}): Promise<Built> {
  const app = Fastify()
  const down = { value: false }
  await app.register(rooms, { historySize: options.historySize ?? 100 })
  const jwt = options.auth === true ? createJwtAuthenticator(JWT_SECRET) : undefined
  const authenticate: Authenticate = async (token, request) => {
    if (down.value) throw new Error('down for the test')
    return jwt === undefined ? null : await jwt(token, request)
  }
  await app.register(wsGateway, { closeTimeoutMs: 200, clientPublishRooms: options.clientPublishRooms ?? [], authenticate })
  await app.register(sseGateway, { retryMs: 30, ...(jwt === undefined ? {} : { authenticate: jwt }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, down }
}

function wsClient (t: Test, built: Built, options: ConnectOptions = {}): GatewayClient {
  const client = connect(`${built.base}/ws`, { WebSocket, pingMs: 0, backoff: { baseMs: 20, maxMs: 100 }, ...options })
  t.after(() => client.close())
  return client
}

const publish = (app: FastifyInstance, room: string, n: number) => (app.rooms.publish(room, 'note', { n }) as PublishResult).id

function dropWsClients (app: FastifyInstance) {
  for (const socket of app.websocketServer.clients) socket.terminate()
}

t.test('ws: after the server drops the socket, the client reconnects and gets the events published meanwhile once, in order', async (t) => {
  const built = await build(t)
  const { app } = built
  const client = wsClient(t, built)
  const got: Array<{ n: number, id: string }> = []
  const gaps: unknown[] = []
  client.on<{ n: number }>('note', (data, meta) => { got.push({ n: data.n, id: meta.id }) })
  client.onGap((gap) => { gaps.push(gap) })
  await client.join('public:news')
  const ids = [publish(app, 'public:news', 1), publish(app, 'public:news', 2)]
  await until('two events', () => got.length === 2)

  built.down.value = true
  dropWsClients(app)
  await until('the server to see the client leave', () => app.rooms.size('public:news') === 0)
  ids.push(publish(app, 'public:news', 3), publish(app, 'public:news', 4), publish(app, 'public:news', 5))
  await until('a refused reconnect attempt', () => client.status === 'reconnecting')
  built.down.value = false

  await until('the resumed events', () => got.length === 5)
  ids.push(publish(app, 'public:news', 6))
  await until('the live event', () => got.length === 6)
  t.same(got.map((e) => e.n), [1, 2, 3, 4, 5, 6], 'every event once, in order')
  t.same(got.map((e) => e.id), ids)
  t.equal(client.recovered('public:news'), true)
  t.same(gaps, [])
  t.equal(client.status, 'open')
})

t.test('ws: when the history no longer reaches back, the rejoin reports recovered false and calls the gap callback', async (t) => {
  const built = await build(t, { historySize: 2 })
  const { app } = built
  const client = wsClient(t, built)
  const got: number[] = []
  const gaps: Array<{ room: string | null, since: string | null }> = []
  client.on<{ n: number }>('note', (data) => { got.push(data.n) })
  client.onGap((gap) => { gaps.push(gap) })
  await client.join('public:news')
  const first = publish(app, 'public:news', 1)
  await until('one event', () => got.length === 1)
  built.down.value = true
  dropWsClients(app)
  await until('the server to see the client leave', () => app.rooms.size('public:news') === 0)
  for (let n = 2; n <= 6; n++) publish(app, 'public:news', n)
  built.down.value = false
  await until('the gap', () => gaps.length === 1)
  t.same(gaps, [{ room: 'public:news', since: first }])
  t.equal(client.recovered('public:news'), false)
  await until('the retained events', () => got.length === 3)
  t.same(got, [1, 5, 6], 'what history still held is delivered')
})

t.test('ws: a JWT in an auth frame or in the URL; a user room of someone else and a bad token are refused', async (t) => {
  const built = await build(t, { auth: true })
  const token = await signToken('42')
  const byFrame = wsClient(t, built, { token: async () => token })
  const joined = await byFrame.join('user:42')
  t.same(joined, { room: 'user:42', recovered: null })
  t.equal(byFrame.user, '42')
  await t.rejects(byFrame.join('user:7'), { code: 'FORBIDDEN', room: 'user:7' })

  const byQuery = wsClient(t, built, { token, auth: 'query' })
  await byQuery.join('user:42')
  t.equal(byQuery.user, '42')

  const errors: GatewayError[] = []
  const statuses: string[] = []
  const bad = wsClient(t, built, { token: 'not-a-jwt', maxRetries: 0, onError: (err) => { errors.push(err) }, onStatus: (s) => { statuses.push(s) } })
  await until('closed', () => bad.status === 'closed')
  t.match(errors, [{ code: 'UNAUTHENTICATED' }])
  t.same(statuses, ['closed'])
})

t.test('ws: publish is refused by default (FORBIDDEN) and acknowledged with its id where CLIENT_PUBLISH_ROOMS allows', async (t) => {
  const closed = await build(t)
  const a = wsClient(t, closed)
  await t.rejects(a.publish('public:chat', 'message', { text: 'hi' }), { code: 'FORBIDDEN', message: /not allowed/ })

  const open = await build(t, { clientPublishRooms: ['public:*'] })
  const b = wsClient(t, open)
  const got: string[] = []
  b.on('message', (_d, meta) => { got.push(meta.id) })
  await b.join('public:chat')
  const { id } = await b.publish('public:chat', 'message', { text: 'hi' })
  await until('its own event', () => got.length === 1)
  t.same(got, [id], 'a member publisher receives its own event, once')
  t.type(await b.ping(), 'number')
})

t.test('sse (fetch): on("*") sees every event; after the server ends the stream it resumes with Last-Event-ID, once each', async (t) => {
  const built = await build(t)
  const { app } = built
  const sub = subscribe(`${built.base}/sse`, ['public:a', 'public:b'], { transport: 'fetch', backoff: { baseMs: 10, maxMs: 50 } })
  t.after(() => sub.close())
  const got: string[] = []
  sub.on('*', (data, meta) => { got.push(`${meta.room}:${(data as { n: number }).n}`) })
  await until('the stream', () => app.rooms.size('public:a') === 1 && app.rooms.size('public:b') === 1)
  publish(app, 'public:a', 1)
  publish(app, 'public:b', 2)
  await until('two events', () => got.length === 2)
  const [stream] = app.rooms.members('public:a') as SseStream[]
  stream.close('shutdown')
  publish(app, 'public:a', 3)
  publish(app, 'public:b', 4)
  t.equal(app.rooms.size('public:a'), 0, 'published while the client had no stream')
  await until('the missed events', () => got.length === 4)
  publish(app, 'public:a', 5)
  await until('the live event', () => got.length === 5)
  t.same(got, ['public:a:1', 'public:b:2', 'public:a:3', 'public:b:4', 'public:a:5'])
  t.match(sub.lastEventId, /-\d+$/)
})

t.test('sse (fetch): a gap event when history was too short, the JWT in a header, a forbidden room is reported and final', async (t) => {
  const built = await build(t, { historySize: 1, auth: true })
  const { app } = built
  const token = await signToken('42')
  const gaps: unknown[] = []
  const sub = subscribe(`${built.base}/sse`, 'user:42', { transport: 'fetch', token, onGap: (gap) => { gaps.push(gap) } })
  t.after(() => sub.close())
  const got: number[] = []
  sub.on<{ n: number }>('note', (data) => { got.push(data.n) })
  await until('the stream', () => app.rooms.size('user:42') === 1)
  publish(app, 'user:42', 1)
  await until('one event', () => got.length === 1)
  const [stream] = app.rooms.members('user:42') as SseStream[]
  stream.close('shutdown')
  for (let n = 2; n <= 4; n++) publish(app, 'user:42', n)
  await until('the gap', () => gaps.length === 1)
  t.match(gaps, [{ room: 'user:42' }])
  await until('the retained event', () => got.length === 2)
  t.same(got, [1, 4])

  const errors: GatewayError[] = []
  const forbidden = subscribe(`${built.base}/sse`, 'user:7', { transport: 'fetch', token, onError: (err) => { errors.push(err) } })
  t.after(() => forbidden.close())
  await until('closed', () => forbidden.status === 'closed')
  t.match(errors, [{ status: 403 }])
})
