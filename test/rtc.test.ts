import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { rtcSignalGateway, type RtcSignalGatewayOptions } from '../plugins/rtc-signal.js'
import { wsGateway } from '../plugins/ws.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { controlRoomOf } from '../lib/rtc/peers.js'
import { Frames, openWs, type Frame } from './helpers/ws-client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'
import type WebSocket from 'ws'

const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' }
const CANDIDATE = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' }

/** An rtc gateway on a loopback port. */
async function listen (t: Test, options: RtcSignalGatewayOptions = {}, setup?: (app: FastifyInstance) => Promise<void>) {
  const app = Fastify()
  t.after(() => app.close())
  await setup?.(app)
  await app.register(rtcSignalGateway, { closeTimeoutMs: 200, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `ws://127.0.0.1:${port}`, port }
}

/** A client socket on `path` whose hello was read; terminated after the test. */
async function client (t: Test, url: string, path = '/rtc', options: WebSocket.ClientOptions = {}) {
  const frames = await openWs(`${url}${path}`, options)
  t.after(() => { frames.ws.terminate() })
  const hello = await frames.next()
  return { frames, id: hello.conn as string, hello }
}

/** A client that joined `room`; returns its joined frame too. */
async function peer (t: Test, url: string, room = 'public:call', options: WebSocket.ClientOptions = {}) {
  const c = await client(t, url, '/rtc', options)
  const joined = await c.frames.request({ op: 'join', room, ref: 'j' })
  return { ...c, joined }
}

/** Reads frames up to the pong of a ping sent now: everything that arrived before it, in order. */
async function drain (frames: Frames): Promise<Frame[]> {
  const ref = `barrier-${Math.random()}`
  frames.send({ op: 'ping', ref })
  const seen: Frame[] = []
  await frames.until((frame) => {
    if (frame.op === 'pong' && frame.ref === ref) return true
    seen.push(frame)
    return false
  })
  return seen
}

t.test('join answers joined with my peer id (the hello conn id) and the peers already in the room', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  t.same(a.joined, { op: 'joined', room: 'public:call', peer: a.id, peers: [], ref: 'j' })
  const b = await peer(t, url)
  t.same(b.joined, { op: 'joined', room: 'public:call', peer: b.id, peers: [a.id], ref: 'j' })
  const c = await peer(t, url)
  t.same(c.joined.peers, [a.id, b.id])
  t.not(a.id, b.id)
})

t.test('the peers already in the room get peer-joined for the newcomer; the newcomer does not get its own', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: b.id })
  const c = await peer(t, url)
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: c.id })
  t.same(await b.frames.next(), { op: 'peer-joined', room: 'public:call', peer: c.id })
  t.same(await drain(c.frames), [], 'nothing about itself')
})

t.test('joining twice changes nothing and answers joined again with the current peers', async (t) => {
  const { app, url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  await a.frames.next()
  t.same(await b.frames.request({ op: 'join', room: 'public:call', ref: 2 }), { op: 'joined', room: 'public:call', peer: b.id, peers: [a.id], ref: 2 })
  t.same(await drain(a.frames), [], 'no second peer-joined')
  t.equal(app.rooms.size('public:call'), 2)
})

t.test('a signal reaches only the named peer, with from set by the server; a spoofed from is ignored', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  const c = await peer(t, url)
  await drain(a.frames)
  await drain(b.frames)

  a.frames.send({ op: 'signal', room: 'public:call', to: b.id, from: c.id, data: OFFER })
  t.same(await b.frames.next(), { op: 'signal', room: 'public:call', from: a.id, data: OFFER })
  b.frames.send({ op: 'signal', room: 'public:call', to: a.id, data: CANDIDATE })
  t.same(await a.frames.next(), { op: 'signal', room: 'public:call', from: b.id, data: CANDIDATE })

  t.same(await drain(c.frames), [], 'the third peer saw neither signal')
  t.same(await drain(a.frames), [], 'the sender got no echo')
})

t.test('a signal to a peer outside the room, to an unknown id or to oneself is NOT_FOUND with the ref', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  const elsewhere = await peer(t, url, 'public:other')
  const lobby = await client(t, url)
  for (const to of [elsewhere.id, lobby.id, 'nobody.1', a.id]) {
    const error = await a.frames.request({ op: 'signal', room: 'public:call', to, data: OFFER, ref: `s-${to}` })
    t.match(error, { op: 'error', code: 'NOT_FOUND', ref: `s-${to}` }, `to ${to}`)
  }
  t.same(await drain(elsewhere.frames), [], 'the peer of the other room got nothing')
  t.same(await drain(lobby.frames), [], 'the connection in no room got nothing')
})

t.test('signaling in a room one has not joined is NOT_FOUND, even to a peer of that room', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  const outsider = await client(t, url)
  const error = await outsider.frames.request({ op: 'signal', room: 'public:call', to: a.id, data: OFFER, ref: 1 })
  t.match(error, { op: 'error', code: 'NOT_FOUND', ref: 1, message: /join room public:call/ })
  t.same(await drain(a.frames), [])
})

t.test('a full room answers ROOM_FULL; a place freed by a leave can be taken again', async (t) => {
  const { url } = await listen(t, { roomCapacity: 2 })
  const a = await peer(t, url)
  await peer(t, url)
  const c = await client(t, url)
  t.match(await c.frames.request({ op: 'join', room: 'public:call', ref: 'full' }), { op: 'error', code: 'ROOM_FULL', ref: 'full' })
  t.match(await c.frames.request({ op: 'join', room: 'public:other', ref: 'o' }), { op: 'joined', room: 'public:other' }, 'other rooms are not affected')
  await a.frames.request({ op: 'leave', room: 'public:call' })
  t.match(await c.frames.request({ op: 'join', room: 'public:call', ref: 'again' }), { op: 'joined', room: 'public:call', ref: 'again' })
})

t.test('capacity counts rtc peers: ws members of the same room take no place, and get no rtc frames', async (t) => {
  const { url } = await listen(t, { roomCapacity: 2 }, async (app) => {
    await app.register(wsGateway, { closeTimeoutMs: 200 })
  })
  const watcher = await client(t, url, '/ws')
  t.match(await watcher.frames.request({ op: 'join', room: 'public:call' }), { op: 'joined' })
  const a = await peer(t, url)
  const b = await peer(t, url)
  t.same(b.joined.peers, [a.id], 'the ws member is not a peer')
  t.match(await drain(a.frames), [{ op: 'peer-joined', peer: b.id }])
  t.same(await drain(watcher.frames), [], 'the ws member saw nothing of the signaling')
})

t.test('invalid signal frames are BAD_MESSAGE with the ref and the connection stays open', async (t) => {
  const { url } = await listen(t, { maxSignalBytes: 1024 })
  const a = await peer(t, url)
  const b = await peer(t, url)
  const bad: Array<[string, Record<string, unknown>]> = [
    ['no data', { to: b.id }],
    ['data not an object', { to: b.id, data: 'offer' }],
    ['data an array', { to: b.id, data: [OFFER] }],
    ['sdp without type', { to: b.id, data: { sdp: OFFER.sdp } }],
    ['unknown sdp type', { to: b.id, data: { type: 'bogus', sdp: OFFER.sdp } }],
    ['offer without sdp', { to: b.id, data: { type: 'offer' } }],
    ['offer with an empty sdp', { to: b.id, data: { type: 'answer', sdp: '' } }],
    ['candidate not a string', { to: b.id, data: { candidate: 42 } }],
    ['negative sdpMLineIndex', { to: b.id, data: { ...CANDIDATE, sdpMLineIndex: -1 } }],
    ['neither sdp nor candidate', { to: b.id, data: { hello: 'world' } }],
    ['data over maxSignalBytes', { to: b.id, data: { type: 'offer', sdp: 'x'.repeat(2000) } }],
    ['no to', { data: OFFER }],
    ['to not a string', { to: 7, data: OFFER }],
    ['invalid room', { room: 'bad room', to: b.id, data: OFFER }]
  ]
  await drain(a.frames)
  for (const [what, fields] of bad) {
    const error = await a.frames.request({ op: 'signal', room: 'public:call', ...fields, ref: what })
    t.match(error, { op: 'error', code: 'BAD_MESSAGE', ref: what }, what)
  }
  t.match(await a.frames.request({ op: 'signal', room: 'public:call', to: b.id, data: { type: 'offer', sdp: 'x'.repeat(2000) }, ref: 'm' }),
    { message: /at most 1024 bytes/ }, 'the size bound is named')
  t.match(await a.frames.request({ op: 'signal', room: 'public:call', to: b.id, data: { hello: 1 }, ref: 'm' }),
    { message: /session description.*ICE candidate/ }, 'the shapes are named')
  await drain(b.frames)
  a.frames.send({ op: 'signal', room: 'public:call', to: b.id, data: OFFER })
  t.same(await b.frames.next(), { op: 'signal', room: 'public:call', from: a.id, data: OFFER }, 'still open and relaying')
})

t.test('every WebRTC signal shape is relayed; keys WebRTC does not define are dropped', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  await drain(b.frames)
  const cases: Array<[unknown, unknown]> = [
    [{ type: 'answer', sdp: 'v=0', extra: 'dropped' }, { type: 'answer', sdp: 'v=0' }],
    [{ type: 'pranswer', sdp: 'v=0' }, { type: 'pranswer', sdp: 'v=0' }],
    [{ type: 'rollback' }, { type: 'rollback' }],
    [{ type: 'rollback', sdp: '' }, { type: 'rollback', sdp: '' }],
    [{ candidate: '', sdpMid: null, sdpMLineIndex: null }, { candidate: '', sdpMid: null, sdpMLineIndex: null }],
    [{ candidate: CANDIDATE.candidate }, { candidate: CANDIDATE.candidate }],
    [{ description: OFFER }, { description: OFFER }],
    [{ candidate: CANDIDATE }, { candidate: CANDIDATE }],
    [{ candidate: null }, { candidate: null }]
  ]
  for (const [data] of cases) a.frames.send({ op: 'signal', room: 'public:call', to: b.id, data })
  for (const [sent, relayed] of cases) {
    t.same(await b.frames.next(), { op: 'signal', room: 'public:call', from: a.id, data: relayed }, JSON.stringify(sent))
  }
})

t.test('signals past the signal rate are RATE_LIMITED with the ref; the burst before them is relayed', async (t) => {
  const { url } = await listen(t, { signalRatePerSec: 0.5, signalBurst: 3 })
  const a = await peer(t, url)
  const b = await peer(t, url)
  await drain(a.frames)
  for (let i = 0; i < 4; i++) a.frames.send({ op: 'signal', room: 'public:call', to: b.id, data: CANDIDATE, ref: i })
  const answers = await drain(a.frames)
  t.same(answers.map((f) => [f.op, f.code, f.ref]), [['error', 'RATE_LIMITED', 3]], 'the fourth is refused')
  t.match(answers[0].message, /signals per second/)
  const relayed = (await drain(b.frames)).filter((f) => f.op === 'signal')
  t.equal(relayed.length, 3, 'the burst went through')
})

t.test('leave answers left and the others get peer-left; leaving a room not joined is NOT_FOUND', async (t) => {
  const { app, url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  await drain(a.frames)
  t.same(await b.frames.request({ op: 'leave', room: 'public:call', ref: 'l' }), { op: 'left', room: 'public:call', ref: 'l' })
  t.same(await a.frames.next(), { op: 'peer-left', room: 'public:call', peer: b.id })
  t.equal(app.rooms.size('public:call'), 1)
  t.match(await b.frames.request({ op: 'leave', room: 'public:call', ref: 'again' }), { op: 'error', code: 'NOT_FOUND', ref: 'again' })
  t.match(await a.frames.request({ op: 'signal', room: 'public:call', to: b.id, data: OFFER, ref: 's' }), { code: 'NOT_FOUND' }, 'a peer that left is no target')
  const c = await peer(t, url)
  t.same(c.joined.peers, [a.id], 'the peer list no longer has it')
})

t.test('a disconnect sends peer-left to every room of the connection', async (t) => {
  const { app, url } = await listen(t)
  const a = await peer(t, url)
  const a2 = await peer(t, url, 'public:two')
  const b = await peer(t, url)
  t.same((await b.frames.request({ op: 'join', room: 'public:two' })).peers, [a2.id])
  await drain(a.frames)
  await drain(a2.frames)
  b.frames.ws.close(1000)
  t.same(await a.frames.next(), { op: 'peer-left', room: 'public:call', peer: b.id })
  t.same(await a2.frames.next(), { op: 'peer-left', room: 'public:two', peer: b.id })
  t.equal(app.rooms.size('public:call'), 1)
  t.equal(app.rooms.size(controlRoomOf('public:call')), 1, 'its control membership is gone too')
})

t.test('a dead connection found by the ping sends peer-left', async (t) => {
  // 250 ms: an event loop stalled for one interval (a loaded machine) would make `a` look dead too
  const { url } = await listen(t, { pingMs: 250 })
  const a = await peer(t, url)
  const silent = await peer(t, url, 'public:call', { autoPong: false })
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: silent.id })
  // `a` answers pings (ws does it by itself); `silent` never does
  t.same(await a.frames.next(), { op: 'peer-left', room: 'public:call', peer: silent.id })
  t.equal((await silent.frames.waitClose()).code, 1006, 'the dead connection was terminated')
})

t.test('events published to the room reach its rtc members as event frames', async (t) => {
  const { app, url } = await listen(t)
  const a = await peer(t, url)
  const b = await peer(t, url)
  await drain(a.frames)
  const { id } = await app.rooms.publish('public:call', 'chat', { text: 'hi' })
  const event = { op: 'event', room: 'public:call', event: 'chat', data: { text: 'hi' }, id }
  t.same(await a.frames.next(), event)
  t.same(await b.frames.next(), event)
})

t.test('presence counts rtc peers and their users; the control room is not the room', async (t) => {
  const { app, url } = await listen(t, { authenticate: createJwtAuthenticator(JWT_SECRET) })
  await peer(t, url, 'public:call')
  const token = await signToken('alice')
  await peer(t, `${url}`, 'public:call', { headers: { authorization: `Bearer ${token}` } })
  const presence = await app.rooms.presence('public:call')
  t.equal(presence.members, 2)
  t.same(presence.users, ['alice'])
  t.match(app.rooms.members('public:call').map((m) => m.transport), ['rtc', 'rtc'])
  t.match(controlRoomOf('public:call'), /^rtc@[A-Za-z0-9_-]{43}$/)
})

t.test('auth is the ws gateway\'s: 401 before the upgrade for a bad token, own user room only, FORBIDDEN otherwise', async (t) => {
  const { url } = await listen(t, { authenticate: createJwtAuthenticator(JWT_SECRET) })
  await t.rejects(openWs(`${url}/rtc?token=not-a-jwt`), { message: 'upgrade refused with 401' })
  const token = await signToken('42')
  const me = await client(t, url, `/rtc?token=${token}`)
  t.equal(me.hello.user, '42')
  t.match(await me.frames.request({ op: 'join', room: 'user:42', ref: 1 }), { op: 'joined', room: 'user:42', peer: me.id, ref: 1 })
  t.match(await me.frames.request({ op: 'join', room: 'user:7', ref: 2 }), { op: 'error', code: 'FORBIDDEN', ref: 2 })
  t.match(await me.frames.request({ op: 'join', room: 'private:x', ref: 3 }), { op: 'error', code: 'FORBIDDEN', ref: 3 })
  const anonymous = await client(t, url)
  t.match(await anonymous.frames.request({ op: 'join', room: 'user:42', ref: 4 }), { op: 'error', code: 'FORBIDDEN', ref: 4 })
})

t.test('a host authorizeJoin decides (and one that throws refuses); maxRoomsPerConnection bounds the rooms', async (t) => {
  const { url } = await listen(t, {
    maxRoomsPerConnection: 1,
    authorizeJoin: (_user, room) => {
      if (room === 'boom') throw new Error('authorizer down')
      return room.startsWith('call:')
    }
  })
  const c = await client(t, url)
  t.match(await c.frames.request({ op: 'join', room: 'public:x', ref: 1 }), { code: 'FORBIDDEN', ref: 1 })
  t.match(await c.frames.request({ op: 'join', room: 'boom', ref: 2 }), { code: 'FORBIDDEN', ref: 2 })
  t.match(await c.frames.request({ op: 'join', room: 'call:1', ref: 3 }), { op: 'joined', ref: 3 })
  t.match(await c.frames.request({ op: 'join', room: 'call:2', ref: 4 }), { code: 'FORBIDDEN', ref: 4, message: /at most 1 rooms/ })
})

t.test('unknown ops (publish included) are BAD_MESSAGE: /rtc speaks join, leave, signal and ping', async (t) => {
  const { url } = await listen(t)
  const a = await peer(t, url)
  t.match(await a.frames.request({ op: 'publish', room: 'public:call', event: 'e', data: 1, ref: 'p' }), { code: 'BAD_MESSAGE', ref: 'p', message: /unknown op/ })
  t.same(await a.frames.request({ op: 'ping', ref: 'x' }), { op: 'pong', ref: 'x' })
})

t.test('shutdown closes rtc sockets with 1001', async (t) => {
  const app = Fastify()
  await app.register(rtcSignalGateway, { closeTimeoutMs: 500 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const a = await peer(t, `ws://127.0.0.1:${port}`)
  await app.close()
  t.equal((await a.frames.waitClose()).code, 1001)
})

t.test('ws and rtc share one upgrade listener in either registration order', async (t) => {
  const { url } = await listen(t, {}, async (app) => { await app.register(wsGateway, { path: '/ws' }) })
  const ws = await client(t, url, '/ws')
  const rtc = await client(t, url, '/rtc')
  t.equal(ws.hello.op, 'hello')
  t.equal(rtc.hello.op, 'hello')
  const app2 = Fastify()
  t.after(() => app2.close())
  await app2.register(rtcSignalGateway, { closeTimeoutMs: 200 })
  await app2.register(wsGateway, { closeTimeoutMs: 200 })
  await app2.ready()
  t.ok(app2.websocketServer, 'one @fastify/websocket, registered by the first gateway')
})

t.test('invalid options fail register with a message naming the option', async (t) => {
  const cases: Array<[RtcSignalGatewayOptions, RegExp]> = [
    [{ roomCapacity: 1 }, /roomCapacity/],
    [{ turnUrls: ['turn:turn.example.com'] }, /turnSecret: is required with turnUrls/],
    [{ stunUrls: ['http://stun.example.com'] }, /stunUrls.0: must start with stun:/],
    [{ turnUrls: ['stun:x'], turnSecret: 's' }, /turnUrls.0: must start with turn:/],
    [{ path: 'rtc' }, /path: must be a path/],
    [{ authenticate: 'yes' as never }, /authenticate: must be a function/],
    [{ capacity: 3 } as never, /unknown option "capacity"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(rtcSignalGateway, options).ready() }, { message }, message.source)
    await app.close()
  }
})
