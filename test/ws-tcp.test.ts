import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { wsGateway, type WsGatewayOptions } from '../plugins/ws.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { wsEventEncoder } from '../lib/ws/frame.js'
import { Frames, openWs, waitFor } from './helpers/ws-client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'


/** A gateway app listening on a loopback port; closed after the test unless `keep` (the test closes it itself). */
async function listen (t: Test, options: WsGatewayOptions = {}, setup?: (app: FastifyInstance) => Promise<void>, keep = false) {
  const app = Fastify()
  if (!keep) t.after(() => app.close())
  await setup?.(app)
  await app.register(wsGateway, { closeTimeoutMs: 200, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `ws://127.0.0.1:${port}/ws` }
}

async function client (t: Test, url: string, options: Parameters<typeof openWs>[1] = {}): Promise<Frames> {
  const frames = await openWs(url, options)
  t.after(() => { frames.ws.terminate() })
  await frames.next()
  return frames
}

function publish (app: FastifyInstance, room: string, event: string, data: unknown): string {
  return (app.rooms.publish(room, event, data) as { id: string }).id
}

t.test('over TCP a bad token is answered 401 and a disallowed Origin 403 before the upgrade, as JSON errors', async (t) => {
  const { url } = await listen(t, { authenticate: createJwtAuthenticator(JWT_SECRET), allowedOrigins: ['https://app.example'] })
  const unauthorized = await openWs(`${url}?token=not-a-jwt`).then(() => null, (err) => err)
  t.equal(unauthorized?.statusCode, 401)
  t.match(JSON.parse(unauthorized.body), { statusCode: 401, code: 'GW_WS_UNAUTHENTICATED', error: 'Unauthorized', message: String })
  const forbidden = await openWs(url, { headers: { origin: 'https://evil.example' } }).then(() => null, (err) => err)
  t.equal(forbidden?.statusCode, 403)
  t.match(JSON.parse(forbidden.body), { statusCode: 403, code: 'GW_WS_ORIGIN_FORBIDDEN' })
  const listed = await client(t, `${url}?token=${await signToken('42')}`, { headers: { origin: 'https://app.example' } })
  t.same(await listed.request({ op: 'join', room: 'user:42' }), { op: 'joined', room: 'user:42' })
})

t.test('over TCP a request without Origin is a non-browser client and is accepted; same-origin is accepted', async (t) => {
  const { url } = await listen(t)
  const plain = await openWs(url)
  t.after(() => { plain.ws.terminate() })
  t.match(await plain.next(), { op: 'hello', user: null })
  const sameOrigin = await openWs(url, { origin: url.replace('ws://', 'http://').replace('/ws', '') })
  t.after(() => { sameOrigin.ws.terminate() })
  t.match(await sameOrigin.next(), { op: 'hello' })
  const otherOrigin = await openWs(url, { origin: 'http://localhost:1' }).then(() => null, (err) => err)
  t.equal(otherOrigin?.statusCode, 403, 'same-origin only by default')
})

t.test('an event is framed once: every member\'s socket is written the same Buffer', async (t) => {
  const { app, url } = await listen(t)
  const members = await Promise.all([1, 2, 3].map(async () => await client(t, url)))
  for (const member of members) await member.request({ op: 'join', room: 'public:fan' })
  const written = new Map<WebSocket, Buffer[]>()
  for (const server of app.websocketServer.clients) {
    const raw = (server as unknown as { _socket: { write: (chunk: Buffer, ...rest: unknown[]) => boolean } })._socket
    const original = raw.write
    const chunks: Buffer[] = []
    written.set(server, chunks)
    raw.write = function (chunk: Buffer, ...rest: unknown[]) {
      chunks.push(chunk)
      return original.call(this, chunk, ...rest)
    }
  }
  const encode = wsEventEncoder.encode
  let encodes = 0
  wsEventEncoder.encode = (event) => { encodes++; return encode(event) }
  t.after(() => { wsEventEncoder.encode = encode })
  const id = publish(app, 'public:fan', 'tick', { n: 1, text: 'é✓' })
  for (const member of members) t.same(await member.next(), { op: 'event', room: 'public:fan', event: 'tick', data: { n: 1, text: 'é✓' }, id })
  t.equal(encodes, 1, 'serialised and framed once for three members')
  const chunks = [...written.values()].map((list) => list.at(-1))
  t.equal(chunks.length, 3)
  t.ok(chunks.every((chunk) => chunk === chunks[0]), 'the very same Buffer went to every socket')
})

t.test('a socket that negotiated permessage-deflate still receives events (through ws.send)', async (t) => {
  const { app, url } = await listen(t, {}, async (app) => {
    await app.register(websocket, { options: { perMessageDeflate: true, closeTimeout: 200 } as never })
  })
  const frames = await client(t, url, { perMessageDeflate: true })
  t.match(frames.ws.extensions, /permessage-deflate/)
  await frames.request({ op: 'join', room: 'public:z' })
  const id = publish(app, 'public:z', 'e', { big: 'z'.repeat(2000) })
  t.same(await frames.next(), { op: 'event', room: 'public:z', event: 'e', data: { big: 'z'.repeat(2000) }, id })
})

t.test('a client too slow to read is closed with 1013 while a fast member keeps receiving', async (t) => {
  const sendBufferBytes = 64 * 1024
  const { app, url } = await listen(t, { sendBufferBytes, closeTimeoutMs: 10_000 })
  const slow = await client(t, url)
  const fast = await client(t, url)
  await slow.request({ op: 'join', room: 'public:flood' })
  await fast.request({ op: 'join', room: 'public:flood' })
  slow.ws.pause()
  const payload = 'x'.repeat(64 * 1024)
  let sent = 0
  // the slow reader's kernel buffers fill first, then its send buffer passes the bound; 2,000 is far beyond that
  while (app.rooms.size('public:flood') === 2 && sent < 2000) {
    const id = publish(app, 'public:flood', 'chunk', { n: sent, payload })
    sent++
    await fast.until((frame) => frame.id === id)
  }
  t.equal(app.rooms.size('public:flood'), 1, `the slow member left the room after ${sent} events`)
  const closing = [...app.websocketServer.clients].find((socket) => socket.readyState === 2)
  t.ok(closing !== undefined, 'its socket is closing')
  t.ok((closing?.bufferedAmount ?? Infinity) <= sendBufferBytes + payload.length + 1024, 'its buffer stayed within the bound plus one frame')
  const after = publish(app, 'public:flood', 'chunk', { n: 'after' })
  t.match(await fast.until((frame) => frame.id === after), { data: { n: 'after' } }, 'the fast member goes on receiving')
  fast.all.length = 0
  slow.ws.resume()
  t.equal((await slow.waitClose(10_000)).code, 1013)
})

t.test('closing the app closes every socket with 1001 and finishes even when a client does not answer', async (t) => {
  const { app, url } = await listen(t, {}, undefined, true)
  const a = await client(t, url)
  const b = await client(t, url)
  const deaf = await client(t, url)
  await a.request({ op: 'join', room: 'public:a' })
  deaf.ws.pause()
  await app.close()
  t.equal((await a.waitClose()).code, 1001)
  t.equal((await b.waitClose()).code, 1001)
  t.equal(app.rooms.size('public:a'), 0)
})

t.test('the server pings: a client that answers stays open, one that does not is terminated', async (t) => {
  // 250 ms: an event loop stalled for one interval (a loaded machine) would make the answering client look dead
  const { url } = await listen(t, { pingMs: 250 })
  const lively = await client(t, url)
  const silent = await client(t, url, { autoPong: false })
  let pings = 0
  lively.ws.on('ping', () => { pings++ })
  await waitFor(() => pings >= 3, 10_000, 'three pings')
  const closed = await silent.waitClose()
  t.equal(closed.code, 1006, 'terminated without a closing handshake')
  t.same(await lively.request({ op: 'ping', ref: 'still' }), { op: 'pong', ref: 'still' })
})

t.test('over TCP a frame above maxPayload closes with 1009', async (t) => {
  const { url } = await listen(t, { maxPayload: 1024 })
  const frames = await client(t, url)
  frames.send({ op: 'ping', ref: 'x'.repeat(2000) })
  t.equal((await frames.waitClose()).code, 1009)
})

t.test('a token in the query string reaches the user room over TCP', async (t) => {
  const { app, url } = await listen(t, { authenticate: createJwtAuthenticator(JWT_SECRET) })
  const frames = await openWs(`${url}?token=${await signToken('42')}`)
  t.after(() => { frames.ws.terminate() })
  t.match(await frames.next(), { op: 'hello', user: '42' })
  await frames.request({ op: 'join', room: 'user:42', ref: 1 })
  const id = publish(app, 'user:42', 'notification', { title: 'New Message!' })
  t.same(await frames.next(), { op: 'event', room: 'user:42', event: 'notification', data: { title: 'New Message!' }, id })
})
