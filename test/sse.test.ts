import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import http2 from 'node:http2'
import Fastify, { type FastifyInstance } from 'fastify'
import { sseGateway, type SseOptions } from '../plugins/sse.js'
import { rooms } from '../plugins/rooms.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import type { HistoryResult, MaybePromise, PublishResult } from '../lib/rooms/types.js'
import { buildTestApp, JWT_SECRET, logCapture, signToken } from './helpers/app.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON of an event or an answer: each test asserts its shape
type Json = any

// ---------------------------------------------------------------------------------------------------------------
// A client that parses the real byte stream (WHATWG event-stream rules for the fields the gateway sends)

interface Frame {
  id?: string
  event?: string
  data?: string
  retry?: string
  comments: string[]
}

interface SseClient {
  status: number
  headers: http.IncomingHttpHeaders
  /** everything received, byte for byte */
  raw: () => string
  frames: Frame[]
  /** frames that carry data (events), in order */
  events: () => Array<{ id?: string, event?: string, data: Json }>
  waitFor: (what: string, predicate: () => boolean, timeoutMs?: number) => Promise<void>
  ended: Promise<void>
  close: () => void
}

const WAIT_MS = 5000

function parseFrame (block: string): Frame {
  const frame: Frame = { comments: [] }
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trim())
      continue
    }
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`
    else if (field === 'id' || field === 'event' || field === 'retry') frame[field] = value
  }
  return frame
}

function openSse (port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      let raw = ''
      let buffer = ''
      const frames: Frame[] = []
      const waiters = new Set<() => void>()
      const notify = () => { for (const w of [...waiters]) w() }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        raw += chunk
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          frames.push(parseFrame(buffer.slice(0, end)))
          buffer = buffer.slice(end + 2)
        }
        notify()
      })
      const ended = new Promise<void>((resolve) => {
        res.on('close', () => { notify(); resolve() })
      })
      res.on('error', () => {})
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        raw: () => raw,
        frames,
        events: () => frames.filter((f) => f.data !== undefined).map((f) => ({ id: f.id, event: f.event, data: JSON.parse(f.data as string) })),
        waitFor: (what, predicate, timeoutMs = WAIT_MS) => new Promise<void>((resolve, reject) => {
          if (predicate()) return resolve()
          const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(raw)}`)) }, timeoutMs)
          const check = () => {
            if (!predicate()) return
            clearTimeout(timer)
            waiters.delete(check)
            resolve()
          }
          waiters.add(check)
        }),
        ended,
        close: () => { req.destroy() }
      })
    })
    req.on('error', reject)
  })
}

/** A plain HTTP request whose answer is read to the end (errors, preflights). */
function request (port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: Json }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => {
        let body: Json = text
        try { body = text === '' ? null : JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Polls a condition that has no event of its own (registry bookkeeping); bounded. */
async function until (what: string, predicate: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function startApp (t: Test, options: SseOptions = {}, setup?: (app: FastifyInstance) => Promise<void> | void) {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  if (setup !== undefined) await setup(app)
  await app.register(sseGateway, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const port = (app.server.address() as net.AddressInfo).port
  const open = async (path: string, headers?: Record<string, string>) => {
    const client = await openSse(port, path, headers)
    t.after(() => client.close())
    return client
  }
  return { app, port, logs, open }
}

function publish (app: FastifyInstance, room: string, event: string, data: unknown): string {
  return (app.rooms.publish(room, event, data) as PublishResult).id
}

// ---------------------------------------------------------------------------------------------------------------
// The stream

t.test('a stream answers text/event-stream without caching or proxy buffering and starts with retry:', async (t) => {
  const { open } = await startApp(t, { retryMs: 1234 }, (app) => {
    app.addHook('onRequest', async (_request, reply) => { reply.header('x-host-header', 'kept') })
  })
  const client = await open('/sse?room=public:a')
  t.equal(client.status, 200)
  t.equal(client.headers['x-host-header'], 'kept', 'headers the host set on the reply are kept')
  t.equal(client.headers['content-type'], 'text/event-stream')
  t.equal(client.headers['cache-control'], 'no-cache')
  t.equal(client.headers['x-accel-buffering'], 'no')
  await client.waitFor('retry', () => client.frames.length > 0)
  t.ok(client.raw().startsWith('retry: 1234\n\n'), 'retry: is the first thing on the stream')
})

t.test('an event arrives framed as id, event and data {"room","data"} with the id publish returned', async (t) => {
  const { app, open } = await startApp(t)
  const client = await open('/sse?room=public:a')
  await until('the stream to join', () => app.rooms.size('public:a') === 1)
  const data = { title: 'New Message!', text: 'two\nlines\r\nand ünïcode' }
  const id = publish(app, 'public:a', 'notification', data)
  await client.waitFor('the event', () => client.events().length === 1)
  t.ok(client.raw().endsWith(`id: ${id}\nevent: notification\ndata: {"room":"public:a","data":${JSON.stringify(data)}}\n\n`),
    'exact bytes: three lines and a blank line, line breaks inside data stay escaped')
  t.same(client.events(), [{ id, event: 'notification', data: { room: 'public:a', data } }])
})

/** The position of the stream's `index`-th room in a stream id (`<position>~<position>...`, docs/protocol.md). */
function entryOf (streamId: string | undefined, index: number): string | undefined {
  return streamId?.split('~')[index]
}

t.test('one stream receives the events of all its rooms, in publish order, and no other room', async (t) => {
  const { app, open } = await startApp(t)
  const client = await open('/sse?room=public:a&room=public:b&room=public:a')
  await until('the stream to join', () => app.rooms.size('public:b') === 1)
  t.equal(app.rooms.size('public:a'), 1, 'a repeated room is joined once')
  const ids = [
    publish(app, 'public:a', 'e', 1),
    publish(app, 'public:c', 'e', 'not mine'),
    publish(app, 'public:b', 'e', 2),
    publish(app, 'public:a', 'e', 3)
  ]
  await client.waitFor('three events', () => client.events().length === 3)
  t.same(client.events().map((e) => [e.data.room, e.data.data]), [['public:a', 1], ['public:b', 2], ['public:a', 3]])
  // a stream of several rooms sends stream ids: the position of each of its rooms, the event's own among them
  t.same(client.events().map((e) => [entryOf(e.id, 0), entryOf(e.id, 1)?.replace(/-\d+$/, '')]),
    [[ids[0], ids[2].replace(/-\d+$/, '')], [ids[0], ids[2].replace(/-\d+$/, '')], [ids[3], ids[2].replace(/-\d+$/, '')]])
  t.equal(entryOf(client.events()[1].id, 1), ids[2])
})

t.test('heartbeat comments ": ping" arrive on the interval', async (t) => {
  const { open } = await startApp(t, { heartbeatMs: 20 })
  const client = await open('/sse?room=public:a')
  await client.waitFor('two pings', () => client.frames.filter((f) => f.comments.includes('ping')).length >= 2)
  t.match(client.raw(), /\n\n: ping\n\n/)
})

// ---------------------------------------------------------------------------------------------------------------
// Resume

/** Opens a stream of `rooms`, waits for one event published to `room`, closes it: the stream id a browser keeps. */
async function lastIdOf (app: FastifyInstance, open: (path: string) => Promise<Awaited<ReturnType<typeof openSse>>>, path: string, room: string): Promise<string> {
  const first = await open(path)
  await until('the stream to join', () => app.rooms.size(room) >= 1)
  publish(app, room, 'e', 'seen')
  await first.waitFor('the event', () => first.events().length === 1)
  first.close()
  await until('the stream to leave', () => app.rooms.size(room) === 0)
  return first.events()[0].id as string
}

t.test('Last-Event-ID replays exactly the missed events of every room, each room in order, then live events', async (t) => {
  const { app, open } = await startApp(t)
  const path = '/sse?room=public:a&room=public:b'
  const lastId = await lastIdOf(app, open, path, 'public:a')
  const ids = [
    publish(app, 'public:b', 'e', 'b1'),
    publish(app, 'public:a', 'e', 'a2'),
    publish(app, 'public:other', 'e', 'not mine'),
    publish(app, 'public:b', 'e', 'b2'),
    publish(app, 'public:a', 'e', 'a3')
  ]
  const client = await open(path, { 'last-event-id': lastId })
  await client.waitFor('the replay', () => client.events().length === 4)
  const of = (room: string) => client.events().filter((e) => e.data.room === room)
  t.same(of('public:a').map((e) => [e.data.data, entryOf(e.id, 0)]), [['a2', ids[1]], ['a3', ids[4]]], 'room a: its missed events in order')
  t.same(of('public:b').map((e) => [e.data.data, entryOf(e.id, 1)]), [['b1', ids[0]], ['b2', ids[3]]], 'room b: its missed events in order')
  t.notOk(client.frames.some((f) => f.event === 'gap'), 'no gap: history reaches back')
  const live = publish(app, 'public:b', 'e', 'live')
  await client.waitFor('the live event', () => client.events().length === 5)
  t.equal(entryOf(client.events()[4].id, 1), live)
  t.equal(entryOf(client.events()[4].id, 0), ids[4], 'and the position of room a stays where it was')
})

t.test('?lastEventId= resumes a first connection; a Last-Event-ID header wins over it', async (t) => {
  const { app, open } = await startApp(t)
  const first = publish(app, 'public:a', 'e', 1)
  const second = publish(app, 'public:a', 'e', 2)
  const third = publish(app, 'public:a', 'e', 3)
  const byQuery = await open(`/sse?room=public:a&lastEventId=${encodeURIComponent(first)}`)
  await byQuery.waitFor('two replayed events', () => byQuery.events().length === 2)
  t.same(byQuery.events().map((e) => e.id), [second, third])
  const byHeader = await open(`/sse?room=public:a&lastEventId=${encodeURIComponent(first)}`, { 'last-event-id': second })
  await byHeader.waitFor('one replayed event', () => byHeader.events().length === 1)
  t.same(byHeader.events().map((e) => e.id), [third], 'the header (a reconnect) is newer than the URL')
})

t.test('a room whose history no longer reaches gets event: gap first, then what is retained', async (t) => {
  const { app, open } = await startApp(t, {}, async (app) => { await app.register(rooms, { historySize: 2 }) })
  const path = '/sse?room=public:a&room=public:b'
  const lastId = await lastIdOf(app, open, path, 'public:a')
  publish(app, 'public:a', 'e', 'a2')
  publish(app, 'public:b', 'e', 'b1')
  publish(app, 'public:a', 'e', 'a3')
  publish(app, 'public:a', 'e', 'a4')
  const client = await open(path, { 'last-event-id': lastId })
  await client.waitFor('gap and replay', () => client.events().length === 4)
  const [gap, ...rest] = client.frames.filter((f) => f.data !== undefined)
  t.same(gap, { event: 'gap', data: '{"room":"public:a"}', comments: [] }, 'gap names the room and carries no id')
  const data = rest.map((f) => JSON.parse(f.data as string))
  t.same(data.filter((d) => d.room === 'public:a').map((d) => d.data), ['a3', 'a4'], 'what room a retains')
  t.same(data.filter((d) => d.room === 'public:b').map((d) => d.data), ['b1'], 'room b recovered')
})

t.test('a resume point from another server lifetime reports a gap for every room', async (t) => {
  const { app, open } = await startApp(t)
  publish(app, 'public:a', 'e', 'kept')
  const client = await open('/sse?room=public:a', { 'last-event-id': 'zzzzzz-5' })
  await client.waitFor('gap and replay', () => client.events().length === 2)
  t.same(client.events().map((e) => [e.event, e.data]), [['gap', { room: 'public:a' }], ['e', { room: 'public:a', data: 'kept' }]])
})

/** The memory bus with another history: a subclass, so history may answer with a promise as a remote bus does. */
class HistoryBus extends MemoryBus {
  protected readonly inner = { history: (room: string, sinceId: string): MaybePromise<HistoryResult> => super.history(room, sinceId) }
  constructor () { super({ historySize: 100 }) }
}

/** History answers only when the test lets it: the window in which a publish races the replay. */
class GatedHistoryBus extends HistoryBus {
  readonly waiting: Array<{ room: string, answer: () => void }> = []
  override history (room: string, sinceId: string): Promise<HistoryResult> {
    return new Promise((resolve) => {
      this.waiting.push({ room, answer: () => { resolve(this.inner.history(room, sinceId)) } })
    })
  }

  answer (room: string): void {
    const index = this.waiting.findIndex((w) => w.room === room)
    this.waiting.splice(index, 1)[0].answer()
  }
}

t.test('events published while the replay is read arrive exactly once, each room in order (asynchronous history)', async (t) => {
  const bus = new GatedHistoryBus()
  const { app, open } = await startApp(t, {}, async (app) => { await app.register(rooms, { bus }) })
  const path = '/sse?room=public:a&room=public:b'
  const since = await lastIdOf(app, open, path, 'public:a')
  const expected = [publish(app, 'public:a', 'e', 'a1')]
  const client = await open(path, { 'last-event-id': since })
  await until('both histories to be asked', () => bus.waiting.length === 2)
  // joined already: these reach the stream live AND are in the history read after them
  expected.push(publish(app, 'public:a', 'e', 'a2'), publish(app, 'public:b', 'e', 'b1'))
  bus.answer('public:a')
  // after room a's history was read: only the live path has these
  expected.push(publish(app, 'public:a', 'e', 'a3'), publish(app, 'public:b', 'e', 'b2'))
  bus.answer('public:b')
  await client.waitFor('the replay', () => client.events().length === 5)
  expected.push(publish(app, 'public:a', 'e', 'a4'))
  await client.waitFor('the live event', () => client.events().length === 6)
  const own = (e: { id?: string, data: { room: string } }) => entryOf(e.id, e.data.room === 'public:a' ? 0 : 1)
  t.same(client.events().map(own).sort(), [...expected].sort(), 'every event once, none lost')
  const of = (room: string) => client.events().filter((e) => e.data.room === room).map((e) => e.data.data)
  t.same([of('public:a'), of('public:b')], [['a1', 'a2', 'a3', 'a4'], ['b1', 'b2']], 'each room in order')
  t.notOk(client.frames.some((f) => f.event === 'gap'))
})

t.test('a resume whose history read fails ends the stream instead of hanging it', async (t) => {
  class FailingBus extends HistoryBus {
    override history (): Promise<HistoryResult> { return Promise.reject(new Error('history store down')) }
  }
  const { app, open, logs } = await startApp(t, {}, async (app) => { await app.register(rooms, { bus: new FailingBus() }) })
  const client = await open('/sse?room=public:a', { 'last-event-id': 'abc-1' })
  await client.ended
  t.equal(app.rooms.size('public:a'), 0, 'the stream left its room')
  t.match(logs.text(), /resume failed/)
})

// ---------------------------------------------------------------------------------------------------------------
// Refusals before the stream

t.test('a bad token is refused with 401 before the stream; a valid one by query or Bearer header opens it', async (t) => {
  const { port, open } = await startApp(t, { authenticate: createJwtAuthenticator(JWT_SECRET) })
  const bad = await request(port, 'GET', '/sse?room=public:a&token=not-a-jwt')
  t.equal(bad.status, 401)
  t.equal(bad.headers['www-authenticate'], 'Bearer')
  t.match(bad.body, { statusCode: 401, code: 'GW_SSE_UNAUTHENTICATED', error: 'Unauthorized', message: 'invalid token' })
  t.notOk(String(bad.headers['content-type']).includes('event-stream'))
  const expired = await request(port, 'GET', `/sse?room=public:a&token=${await signToken('42', { expiresInS: -60 })}`)
  t.match(expired, { status: 401, body: { message: 'token expired' } })
  const token = await signToken('42')
  const byQuery = await open(`/sse?room=user:42&token=${token}`)
  t.equal(byQuery.status, 200)
  const byHeader = await open('/sse?room=user:42', { authorization: `Bearer ${token}` })
  t.equal(byHeader.status, 200)
})

t.test('a room the user may not join is refused with 403 before the stream', async (t) => {
  const { port, open } = await startApp(t, { authenticate: createJwtAuthenticator(JWT_SECRET) })
  const other = await request(port, 'GET', `/sse?room=public:a&room=user:43&token=${await signToken('42')}`)
  t.match(other, { status: 403, body: { code: 'GW_SSE_ROOM_FORBIDDEN', message: 'room "user:43" is not allowed' } })
  const anonymous = await request(port, 'GET', '/sse?room=team:red')
  t.equal(anonymous.status, 403, 'anonymous: public rooms only')
  const claimed = await open(`/sse?room=team:red&token=${await signToken('42', { rooms: ['team:*'] })}`)
  t.equal(claimed.status, 200, 'the token\'s rooms claim allows it')
})

t.test('authorizeJoin decides rooms when given, and may answer asynchronously', async (t) => {
  const { port, open } = await startApp(t, { authorizeJoin: async (_user, room) => room.startsWith('ok:') })
  t.equal((await request(port, 'GET', '/sse?room=public:a')).status, 403)
  t.equal((await open('/sse?room=ok:1')).status, 200)
})

t.test('a user:<id> room stays private to its user even when a host rule allows every room', async (t) => {
  const { port, open } = await startApp(t, {
    authorizeJoin: async () => true,
    authenticate: async (token) => token === null ? null : { id: token }
  })
  t.equal((await request(port, 'GET', '/sse?room=user:99')).status, 403, 'anonymous')
  t.equal((await request(port, 'GET', '/sse?room=user:99&token=42')).status, 403, 'another user')
  t.equal((await open('/sse?room=user:42&token=42')).status, 200, 'its own user')
})

t.test('a missing, invalid or excess room is refused with 400', async (t) => {
  const { port } = await startApp(t, { maxRoomsPerStream: 2 })
  t.match(await request(port, 'GET', '/sse'), { status: 400, body: { code: 'GW_SSE_NO_ROOM' } })
  t.match(await request(port, 'GET', '/sse?room='), { status: 400, body: { code: 'GW_INVALID_ROOM' } })
  t.match(await request(port, 'GET', '/sse?room=bad%20room'), { status: 400, body: { code: 'GW_INVALID_ROOM' } })
  t.match(await request(port, 'GET', `/sse?room=public:${'x'.repeat(130)}`), { status: 400, body: { code: 'GW_INVALID_ROOM' } })
  t.match(await request(port, 'GET', '/sse?room=public:a&room=public:b&room=public:c'),
    { status: 400, body: { code: 'GW_SSE_TOO_MANY_ROOMS', message: 'a stream may have at most 2 rooms' } })
})

t.test('streams beyond the per-address limit get 429 until one closes', async (t) => {
  const { app, port, open } = await startApp(t, { maxConnectionsPerIp: 1 })
  const first = await open('/sse?room=public:a')
  t.equal(first.status, 200)
  t.match(await request(port, 'GET', '/sse?room=public:a'), { status: 429, body: { code: 'GW_SSE_TOO_MANY_CONNECTIONS' } })
  first.close()
  await until('the first stream to close', () => app.rooms.size('public:a') === 0)
  t.equal((await open('/sse?room=public:a')).status, 200)
})

// ---------------------------------------------------------------------------------------------------------------
// CORS

t.test('an allowed Origin is echoed with credentials; another Origin gets 403 before the stream', async (t) => {
  const { port, open } = await startApp(t, { allowedOrigins: ['https://app.example'] })
  const allowed = await open('/sse?room=public:a', { origin: 'https://app.example' })
  t.equal(allowed.status, 200)
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(allowed.headers['access-control-allow-credentials'], 'true')
  t.match(allowed.headers.vary, /Origin/)
  const denied = await request(port, 'GET', '/sse?room=public:a', { origin: 'https://evil.example' })
  t.match(denied, { status: 403, body: { code: 'GW_SSE_ORIGIN_FORBIDDEN' } })
  t.equal(denied.headers['access-control-allow-origin'], undefined)
  const sameOrigin = await open('/sse?room=public:a', { origin: `http://127.0.0.1:${port}` })
  t.equal(sameOrigin.status, 200, 'same origin passes without being listed')
  const noOrigin = await open('/sse?room=public:a')
  t.equal(noOrigin.status, 200, 'no Origin: not a browser, not refused for it')
  t.equal(noOrigin.headers['access-control-allow-origin'], undefined)
})

t.test('refusals to an allowed Origin carry CORS headers so the page can read them', async (t) => {
  const { port } = await startApp(t, { allowedOrigins: ['https://app.example'] })
  const res = await request(port, 'GET', '/sse?room=user:1', { origin: 'https://app.example' })
  t.equal(res.status, 403)
  t.equal(res.headers['access-control-allow-origin'], 'https://app.example')
})

t.test('a preflight from an allowed Origin is answered 204 with methods and headers; others get 403', async (t) => {
  const { port } = await startApp(t, { allowedOrigins: ['https://app.example'] })
  const ok = await request(port, 'OPTIONS', '/sse?room=public:a', {
    origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id'
  })
  t.equal(ok.status, 204)
  t.equal(ok.headers['access-control-allow-origin'], 'https://app.example')
  t.match(ok.headers['access-control-allow-methods'], /GET/)
  t.match(ok.headers['access-control-allow-headers'], /Last-Event-ID/)
  t.match(ok.headers['access-control-allow-headers'], /Authorization/)
  t.equal(ok.headers['access-control-max-age'], '600')
  const denied = await request(port, 'OPTIONS', '/sse', { origin: 'https://evil.example', 'access-control-request-method': 'GET' })
  t.equal(denied.status, 403)
  t.equal(denied.headers['access-control-allow-origin'], undefined)
  t.equal((await request(port, 'OPTIONS', '/sse')).status, 403, 'a preflight without Origin is not a preflight')
})

t.test('ALLOWED_ORIGINS=* answers Access-Control-Allow-Origin: * without credentials', async (t) => {
  const { open } = await startApp(t, { allowedOrigins: ['*'] })
  const client = await open('/sse?room=public:a', { origin: 'https://anywhere.example' })
  t.equal(client.headers['access-control-allow-origin'], '*')
  t.equal(client.headers['access-control-allow-credentials'], undefined)
})

// ---------------------------------------------------------------------------------------------------------------
// Back-pressure and the end of a stream

t.test('a client that does not read is ended once its send buffer bound is passed', async (t) => {
  const { app, port, logs } = await startApp(t, { sendBufferBytes: 4096 })
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.write('GET /sse?room=public:slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  socket.pause()
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.on('error', () => {})
  await until('the stream to join', () => app.rooms.size('public:slow') === 1)
  const payload = 'x'.repeat(64 * 1024)
  let published = 0
  // the kernel's socket buffers take a few MB first; bounded at 64 MB
  while (app.rooms.size('public:slow') === 1 && published < 1024) {
    publish(app, 'public:slow', 'big', payload)
    published++
    if (published % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.rooms.size('public:slow'), 0, `the slow stream was dropped after ${published} events`)
  socket.resume()
  await closed
  t.equal(socket.destroyed, true, 'the server closed the connection')
  t.match(logs.text(), /does not read fast enough/)
})

t.test('a client that disconnects leaves every room at once, and its address slot is freed', async (t) => {
  const { app, port, open } = await startApp(t, { maxConnectionsPerIp: 1, heartbeatMs: 10 })
  const client = await open('/sse?room=public:a&room=public:b')
  await until('the stream to join', () => app.rooms.size('public:b') === 1)
  client.close()
  await until('the registry to drop the stream', () => app.rooms.size('public:a') === 0 && app.rooms.size('public:b') === 0)
  t.same(await app.rooms.list(), [])
  t.equal((app.rooms.publish('public:a', 'e', 1) as PublishResult).delivered, 0, 'nobody left to deliver to')
  t.equal((await request(port, 'GET', '/sse')).status, 400, 'the address may open a stream again (400 = past the limit check)')
})

t.test('closing the app ends open streams cleanly and promptly', async (t) => {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(sseGateway, { heartbeatMs: 10 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const client = await openSse(port, '/sse?room=public:a')
  t.after(() => client.close())
  await until('the stream to join', () => app.rooms.size('public:a') === 1)
  await app.close()
  await client.ended
  t.equal(app.rooms.size('public:a'), 0)
  t.match(logs.text(), /"reason":"shutdown"/)
})

t.test('a client gone while it was authenticated gets no stream and holds no slot', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let asked!: () => void
  const authStarted = new Promise<void>((resolve) => { asked = resolve })
  const sockets: net.Socket[] = []
  const { port, open } = await startApp(t, {
    maxConnectionsPerIp: 1,
    authenticate: async () => { asked(); await gate; return null }
  }, (app) => { app.server.on('connection', (socket: net.Socket) => sockets.push(socket)) })
  const req = http.get({ host: '127.0.0.1', port, path: '/sse?room=public:a', agent: false })
  req.on('error', () => {})
  await authStarted
  req.destroy()
  await until('the server to see the disconnect', () => sockets.length === 1 && sockets[0].destroyed)
  release()
  const next = await open('/sse?room=public:a')
  t.equal(next.status, 200, 'the slot was not kept by the vanished client')
})

// ---------------------------------------------------------------------------------------------------------------
// Options and server.ts

t.test('invalid options fail register with a message naming the option', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await t.rejects(async () => { await app.register(sseGateway, { heartbeatMs: 'soon' } as never) }, /fastify-gateways\/sse: heartbeatMs/)
  const app2 = Fastify()
  t.after(() => app2.close())
  await t.rejects(async () => { await app2.register(sseGateway, { retry: 10 } as never) }, /unknown option "retry"/)
})

t.test('the path is an option', async (t) => {
  const { port } = await startApp(t, { path: '/events' })
  t.equal((await request(port, 'GET', '/events')).status, 400)
  t.equal((await request(port, 'GET', '/sse')).status, 404)
  t.equal((await request(port, 'HEAD', '/events?room=public:a')).status, 404, 'no HEAD route: it would have no body to stream')
})

t.test('server.ts wires the sse gateway from the environment, and the token never reaches the logs', async (t) => {
  const { app, logs } = await buildTestApp({ GATEWAYS: 'sse', AUTH_JWT_SECRET: JWT_SECRET, SSE_RETRY_MS: '250', LOG_LEVEL: 'debug' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const token = await signToken('42')
  const client = await openSse(port, `/sse?room=user:42&room=public:news&token=${token}`)
  t.after(() => client.close())
  t.equal(client.status, 200)
  await until('the stream to join', () => app.rooms.size('user:42') === 1)
  const id = publish(app, 'user:42', 'notification', { title: 'New Message!' })
  await client.waitFor('the event', () => client.events().length === 1)
  t.ok(client.raw().startsWith('retry: 250\n\n'), 'SSE_RETRY_MS')
  t.same(client.events().map((e) => ({ ...e, id: entryOf(e.id, 0) })), [{ id, event: 'notification', data: { room: 'user:42', data: { title: 'New Message!' } } }])
  t.equal((await request(port, 'GET', '/sse?room=user:43&token=' + token)).status, 403)
  t.equal((await request(port, 'GET', '/sse?room=public:news&token=x' + token)).status, 401)
  t.notOk(logs.text().includes(token), 'the token is not logged')
  t.match(logs.text(), /token=\[redacted\]/)
})

t.test('over HTTP/2 the stream is written through the response, framed the same', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(sseGateway, { retryMs: 500 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const port = (app.server.address() as net.AddressInfo).port
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.after(() => session.close())
  session.on('error', () => {})
  const req = session.request({ ':path': '/sse?room=public:a' })
  const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve))
  t.equal(head[':status'], 200)
  t.equal(head['content-type'], 'text/event-stream')
  let raw = ''
  req.setEncoding('utf8')
  const got = new Promise<void>((resolve) => {
    req.on('data', (chunk: string) => { raw += chunk; if (raw.includes('\n\nid: ')) resolve() })
  })
  await until('the stream to join', () => app.rooms.size('public:a') === 1)
  const id = (app.rooms.publish('public:a', 'e', { n: 1 }) as PublishResult).id
  await got
  t.equal(raw, `retry: 500\n\nid: ${id}\nevent: e\ndata: {"room":"public:a","data":{"n":1}}\n\n`)
  req.close()
  await until('the stream to leave', () => app.rooms.size('public:a') === 0)
})

t.test('a stream whose head cannot be written (a bad header from a host hook) holds no slot', async (t) => {
  const { app, port, open } = await startApp(t, { maxConnectionsPerIp: 1 }, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-break'] === '1') reply.header('x-bad', 'line\nbreak')
    })
  })
  await t.rejects(request(port, 'GET', '/sse?room=public:a', { 'x-break': '1' }), 'the connection is closed')
  t.equal(app.rooms.size('public:a'), 0)
  t.equal((await open('/sse?room=public:a')).status, 200, 'the address slot was released')
})
