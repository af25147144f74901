import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { rooms } from '../plugins/rooms.js'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { connect, type GatewayClient } from '../public/client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

// The `presence` op of /ws (an extension of the protocol, docs/protocol.md) through the client's presence(room):
// members of every transport and the distinct users, only for members of the room.

async function until (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('presence over ws: connections of every transport, distinct users, for members only', async (t) => {
  const app = Fastify()
  const jwt = createJwtAuthenticator(JWT_SECRET)
  await app.register(rooms)
  await app.register(wsGateway, { closeTimeoutMs: 200, authenticate: jwt })
  await app.register(sseGateway, { authenticate: jwt })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const client = (token?: string): GatewayClient => {
    const c = connect(`${base}/ws`, { WebSocket, pingMs: 0, ...(token === undefined ? {} : { token }) })
    t.after(() => c.close())
    return c
  }

  const alice = client(await signToken('alice'))
  const aliceAgain = client(await signToken('alice'))
  const anonymous = client()
  await Promise.all([alice.join('public:demo'), aliceAgain.join('public:demo'), anonymous.join('public:demo')])
  const sse = new AbortController()
  t.after(() => { sse.abort() })
  const stream = await fetch(`${base}/sse?room=public:demo&token=${await signToken('bob')}`, { signal: sse.signal })
  t.equal(stream.status, 200)
  await until('the sse member', () => app.rooms.size('public:demo') === 4)

  const seen = await anonymous.presence('public:demo')
  t.equal(seen.room, 'public:demo')
  t.equal(seen.members, 4, 'three ws connections and one sse stream')
  t.same([...seen.users].sort(), ['alice', 'bob'], 'each user once, whatever the transport; anonymous ones are only counted')
  t.same(await alice.presence('public:demo'), seen, 'the same answer for every member')

  await t.rejects(alice.presence('public:other'), { code: 'FORBIDDEN', message: /join it first/ }, 'not a member: refused')
  await anonymous.leave('public:demo')
  await t.rejects(anonymous.presence('public:demo'), { code: 'FORBIDDEN' }, 'after leaving too')
  await t.rejects(anonymous.presence('bad room!'), { code: 'BAD_MESSAGE' }, 'the room name is checked')
  t.match(await alice.presence('public:demo'), { members: 3 }, 'the one that left is no longer counted')
})

t.test('presence without ref is answered without ref; a registry that fails answers UNAVAILABLE', async (t) => {
  const app = Fastify()
  await app.register(rooms)
  await app.register(wsGateway, { closeTimeoutMs: 200 })
  await app.ready()
  t.after(() => app.close())
  const ws = await app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.1' } } as never)
  t.after(() => { ws.terminate() })
  const frames: Array<Record<string, unknown>> = []
  ws.on('message', (data) => { frames.push(JSON.parse(String(data))) })
  ws.send(JSON.stringify({ op: 'join', room: 'public:a', ref: 'j' }))
  await until('joined', () => frames.some((f) => f.op === 'joined'))
  ws.send(JSON.stringify({ op: 'presence', room: 'public:a' }))
  await until('presence', () => frames.some((f) => f.op === 'presence'))
  t.same(frames.find((f) => f.op === 'presence'), { op: 'presence', room: 'public:a', members: 1, users: [] })

  app.rooms.presence = () => { throw new Error('bus down') }
  ws.send(JSON.stringify({ op: 'presence', room: 'public:a', ref: 'p' }))
  await until('the error', () => frames.some((f) => f.op === 'error'))
  t.match(frames.find((f) => f.op === 'error'), { code: 'UNAVAILABLE', ref: 'p' })
})
