import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { expiryWheel } from '../lib/expiry.js'
import { connect, subscribe, type GatewayError } from '../public/client.js'
import type { PublishResult } from '../lib/rooms/types.js'

// Tokens that expire while the client is connected, against server.ts's wiring (docs/protocol.md, "Extensions"):
// the ws client answers the server's refresh request from its token function and keeps its connection past the old
// expiry; the SSE client, told `event: expired`, starts over with a fresh token.

async function until (what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function server (t: Test): Promise<{ app: FastifyInstance, base: string }> {
  const { app } = await buildTestApp({ AUTH_JWT_SECRET: JWT_SECRET, GATEWAYS: 'ws,sse', PUBLIC_ROOMS: 'public:*' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

const expOf = (token: string): number => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp

t.test('ws: the client refreshes its token on the live connection, keeps it past the old expiry and drops a room it lost', async (t) => {
  const { app, base } = await server(t)
  const tokens: string[] = []
  // 5 s first: the server asks about 2.5 s before it expires; the renewed token allows team:a only
  const token = async () => {
    const next = tokens.length === 0
      ? await signToken('carol', { expiresInS: 5, rooms: ['team:a', 'team:b'] })
      : await signToken('carol', { expiresInS: 600, rooms: ['team:a'] })
    tokens.push(next)
    return next
  }
  const errors: GatewayError[] = []
  const statuses: string[] = []
  const client = connect(`${base}/ws`, { WebSocket, token, pingMs: 0, onError: (err) => { errors.push(err) }, onStatus: (s) => { statuses.push(s) } })
  t.after(() => client.close())
  await Promise.all([client.join('team:a'), client.join('team:b')])
  const conn = client.conn
  await until('the refresh and the room it cost', () => errors.length === 1)
  t.match(errors, [{ code: 'FORBIDDEN', room: 'team:b' }], 'team:b was left by the server and reported')
  t.equal(tokens.length, 2, 'one token for the connection, one for the refresh')
  t.same([...client.rooms.keys()], ['team:a'])
  t.equal(app.rooms.size('team:b'), 0)

  await expiryWheel.sweptAfter(expOf(tokens[0]) * 1000 + 1)
  const got: unknown[] = []
  client.on('note', (data) => { got.push(data) })
  const id = (app.rooms.publish('team:a', 'note', { n: 1 }) as PublishResult).id
  await until('the event after the old expiry', () => got.length === 1)
  t.ok(id)
  t.equal(client.conn, conn, 'the same connection')
  t.same(statuses, ['open'], 'never reconnected')
  t.equal(errors.length, 1, 'no UNAUTHENTICATED')
})

t.test('sse: event: expired ends the stream; the client reports it and resumes with a fresh token', async (t) => {
  const { app, base } = await server(t)
  const tokens: string[] = []
  const token = async () => {
    const next = await signToken('dave', { expiresInS: tokens.length === 0 ? 2 : 600 })
    tokens.push(next)
    return next
  }
  const errors: GatewayError[] = []
  const stream = subscribe(`${base}/sse`, 'user:dave', { transport: 'fetch', token, backoff: { baseMs: 50, maxMs: 100 }, onError: (err) => { errors.push(err) } })
  t.after(() => { stream.close() })
  const got: number[] = []
  stream.on<{ n: number }>('note', (data) => { got.push(data.n) })
  await until('the stream', () => app.rooms.size('user:dave') === 1)
  app.rooms.publish('user:dave', 'note', { n: 1 })
  await until('the first event', () => got.length === 1)
  await until('the expiry', () => errors.length === 1)
  t.match(errors, [{ code: 'UNAUTHENTICATED', message: 'token expired' }])
  await until('a new stream with a fresh token', () => tokens.length === 2 && app.rooms.size('user:dave') === 1)
  app.rooms.publish('user:dave', 'note', { n: 2 })
  await until('the second event', () => got.length === 2)
  t.same(got, [1, 2], 'no duplicate after the resume')
  t.equal(stream.status, 'open')
})
