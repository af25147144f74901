import t, { type Test } from 'tap'
import { buildTestApp, signToken, JWT_SECRET } from './helpers/app.js'
import { openWs, type Frames, type Frame } from './helpers/ws-client.js'
import { startRedis } from './helpers/redis.js'
import { loadConfig } from '../lib/config.js'
import { buildApp } from '../server.js'
import type { RedisBus } from '../lib/redis/bus.js'
import { turnPassword } from '../lib/rtc/turn.js'

const OFFER = { type: 'offer', sdp: 'v=0\r\n' }
const ANSWER = { type: 'answer', sdp: 'v=0\r\n' }
const TURN_SECRET = 'turn-shared-secret-never-logged'
const API_KEY = 'ops-0123456789abcdef'

async function serve (t: Test, env: Record<string, string>) {
  const built = await buildTestApp(env)
  t.after(() => built.app.close())
  await built.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = built.app.server.address() as { port: number }
  return { ...built, url: `ws://127.0.0.1:${port}` }
}

async function peer (t: Test, url: string, room = 'public:call') {
  const frames = await openWs(`${url}/rtc`)
  t.after(() => { frames.ws.terminate() })
  const hello = await frames.next()
  const joined = await frames.request({ op: 'join', room, ref: 'j' })
  return { frames, id: hello.conn as string, joined }
}

async function nothingMore (frames: Frames): Promise<Frame[]> {
  frames.send({ op: 'ping', ref: 'barrier' })
  const seen: Frame[] = []
  await frames.until((f) => (f.op === 'pong' && f.ref === 'barrier') || (seen.push(f), false))
  return seen
}

t.test('server.ts wires rtc from the environment: /rtc, capacity, and ICE servers with TURN credentials', async (t) => {
  const { app, url, logs } = await serve(t, {
    GATEWAYS: 'rtc',
    AUTH_JWT_SECRET: JWT_SECRET,
    RTC_ROOM_CAPACITY: '2',
    RTC_STUN_URLS: 'stun:stun.example.com:3478',
    RTC_TURN_URLS: 'turn:turn.example.com:3478,turns:turn.example.com:5349',
    RTC_TURN_SECRET: TURN_SECRET,
    RTC_TURN_TTL_S: '120',
    RTC_SIGNAL_RATE_PER_SEC: '5'
  })
  const a = await peer(t, url)
  const b = await peer(t, url)
  t.same(b.joined.peers, [a.id])
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: b.id })
  a.frames.send({ op: 'signal', room: 'public:call', to: b.id, data: OFFER })
  t.same(await b.frames.next(), { op: 'signal', room: 'public:call', from: a.id, data: OFFER })
  const third = await openWs(`${url}/rtc`)
  t.after(() => { third.ws.terminate() })
  await third.next()
  t.match(await third.request({ op: 'join', room: 'public:call', ref: 'x' }), { code: 'ROOM_FULL', ref: 'x' }, 'RTC_ROOM_CAPACITY')

  const token = await signToken('alice')
  const askedAt = Math.floor(Date.now() / 1000)
  const response = await app.inject({ url: '/rtc/ice-servers', headers: { authorization: `Bearer ${token}` } })
  const answeredAt = Math.ceil(Date.now() / 1000)
  t.equal(response.statusCode, 200)
  const [stun, turn] = response.json()
  t.same(stun, { urls: ['stun:stun.example.com:3478'] })
  t.same(turn.urls, ['turn:turn.example.com:3478', 'turns:turn.example.com:5349'])
  const expiry = Number(turn.username.split(':')[0])
  // bracketed by the request's own start and end: no margin that a loaded machine could exceed
  t.ok(expiry >= askedAt + 120 && expiry <= answeredAt + 120, 'RTC_TURN_TTL_S')
  t.match(turn.username, /^\d+:alice$/)
  t.equal(turn.credential, turnPassword(TURN_SECRET, turn.username))
  t.equal((await app.inject('/rtc/ice-servers?token=bad')).statusCode, 401)
  t.notOk(logs.text().includes(TURN_SECRET), 'the TURN secret is never logged')
  t.notOk(logs.text().includes(token), 'the token is never logged')
})

t.test('RTC_SIGNAL_RATE_PER_SEC limits signals per connection', async (t) => {
  // the frame limit of the connection far above the signal limit, so the signal limit is the one that refuses
  const { url } = await serve(t, { GATEWAYS: 'rtc', RTC_SIGNAL_RATE_PER_SEC: '1', WS_RATE_PER_SEC: '10000', WS_RATE_BURST: '10000' })
  const a = await peer(t, url)
  const b = await peer(t, url)
  await a.frames.next()
  // burst: max(100, 2 × rate) = 100 signals, then one more per second
  for (let i = 0; i < 110; i++) a.frames.send({ op: 'signal', room: 'public:call', to: b.id, data: OFFER, ref: i })
  const refused = await a.frames.next()
  t.match(refused, { op: 'error', code: 'RATE_LIMITED', message: /1 signals per second/ })
  t.ok(refused.ref >= 100, `the burst of 100 passed (first refused: ${refused.ref})`)
})

t.test('presence (GET /api/rooms/:room) counts the rtc peers and their users', async (t) => {
  const { app, url } = await serve(t, { GATEWAYS: 'rtc,external', AUTH_JWT_SECRET: JWT_SECRET, EXTERNAL_API_KEYS: `ops=${API_KEY}` })
  await peer(t, url)
  const frames = await openWs(`${url}/rtc?token=${await signToken('bob')}`)
  t.after(() => { frames.ws.terminate() })
  await frames.next()
  await frames.request({ op: 'join', room: 'public:call' })
  const response = await app.inject({ url: '/api/rooms/public:call', headers: { authorization: `Bearer ${API_KEY}` } })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { room: 'public:call', members: 2, users: ['bob'] })
})

t.test('a bad rtc variable stops start-up with one line naming it', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'rtc', RTC_STUN_URLS: 'http://stun.example.com' }), { message: /^RTC_STUN_URLS: each URL must start with stun:/ })
  t.throws(() => loadConfig({ GATEWAYS: 'rtc', RTC_TURN_URLS: 'stun:x' }), { message: /^RTC_TURN_URLS: each URL must start with turn:/ })
  t.throws(() => loadConfig({ GATEWAYS: 'rtc', RTC_ROOM_CAPACITY: '1' }), { message: /^RTC_ROOM_CAPACITY: must be at least 2/ })
  const config = loadConfig({ GATEWAYS: 'rtc', RTC_TURN_URLS: 'turn:turn.example.com' })
  await t.rejects(buildApp(config, { logStream: { write: () => true } as never }), { message: /^RTC_TURN_SECRET: is required with RTC_TURN_URLS/ })
})

t.test('two instances on one Redis: peers meet, signal and leave across instances', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = { GATEWAYS: 'rtc', REDIS_URL: redis.url, RTC_ROOM_CAPACITY: '3' }
  const one = await serve(t, env)
  const two = await serve(t, env)
  await (one.app.rooms.bus as RedisBus).waitReady(10_000)
  await (two.app.rooms.bus as RedisBus).waitReady(10_000)

  const a = await peer(t, one.url)
  const b = await peer(t, two.url)
  t.same(b.joined.peers, [a.id], 'the newcomer on instance two learns the peer on instance one before joined')
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: b.id })

  a.frames.send({ op: 'signal', room: 'public:call', to: b.id, from: 'spoofed', data: OFFER })
  t.same(await b.frames.next(), { op: 'signal', room: 'public:call', from: a.id, data: OFFER }, 'one → two, from set by the server')
  b.frames.send({ op: 'signal', room: 'public:call', to: a.id, data: ANSWER })
  t.same(await a.frames.next(), { op: 'signal', room: 'public:call', from: b.id, data: ANSWER }, 'two → one')

  const c = await peer(t, one.url)
  t.same(new Set(c.joined.peers), new Set([a.id, b.id]), 'a later newcomer on instance one sees both')
  t.same(await b.frames.next(), { op: 'peer-joined', room: 'public:call', peer: c.id })
  t.same(await a.frames.next(), { op: 'peer-joined', room: 'public:call', peer: c.id })

  const full = await openWs(`${two.url}/rtc`)
  t.after(() => { full.ws.terminate() })
  await full.next()
  t.match(await full.request({ op: 'join', room: 'public:call', ref: 'f' }), { code: 'ROOM_FULL', ref: 'f' }, 'capacity spans the instances')

  b.frames.ws.close(1000)
  t.same(await a.frames.next(), { op: 'peer-left', room: 'public:call', peer: b.id })
  t.same(await c.frames.next(), { op: 'peer-left', room: 'public:call', peer: b.id })
  t.match(await a.frames.request({ op: 'signal', room: 'public:call', to: b.id, data: OFFER, ref: 'gone' }), { code: 'NOT_FOUND', ref: 'gone' })
  t.same(await nothingMore(c.frames), [])
})
