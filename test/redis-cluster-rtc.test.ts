import t from 'tap'
import { RedisBus } from '../lib/redis/bus.js'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { startRedis, until } from './helpers/redis.js'
import { connectRtc, joinRoom, poll, startInstance, startInstances } from './helpers/instance.js'

// several server.ts processes start (tsx compiles each): on a busy machine that outlasts the default file timeout
t.setTimeout(180_000)

// WebRTC signaling between server.ts processes on one Redis: peers of one room on different instances find
// each other and exchange offers, answers and candidates as if they were on one instance, and hear of the peers of
// an instance that crashes leaving.

/** short, so a crashed instance is noticed quickly (heartbeats every 500 ms) */
const PRESENCE_TTL_MS = 1500

const API_KEY = 'ops-rtc-cluster-0123456789abcdef'
const auth = { authorization: `Bearer ${API_KEY}` }
const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' }
const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' }
const CANDIDATE = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 }


t.test('rtc peers on two instances of one Redis', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = { GATEWAYS: 'rtc,external', REDIS_URL: redis.url, EXTERNAL_API_KEYS: `ops=${API_KEY}`, REDIS_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) }
  const [a, b] = await startInstances(t, 2, env)
  await Promise.all([a.waitReady(), b.waitReady()])

  t.test('a peer joining on B is told of the peer on A, and signals cross in both directions with from set', async (t) => {
    const room = 'public:call'
    const alice = await connectRtc(t, a)
    const first = await joinRoom(alice, room)
    t.same([first.peer, first.peers], [alice.peer, []], 'alice is alone')
    const bob = await connectRtc(t, b)
    const joined = await joinRoom(bob, room)
    t.same([joined.peer, joined.peers], [bob.peer, [alice.peer]], 'bob\'s joined lists alice, on the other instance')
    t.same(await alice.until((f) => f.op === 'peer-joined'), { op: 'peer-joined', room, peer: bob.peer }, 'alice hears of bob')

    alice.send({ op: 'signal', room, to: bob.peer, data: OFFER })
    t.same(await bob.until((f) => f.op === 'signal'), { op: 'signal', room, from: alice.peer, data: OFFER }, 'the offer reaches bob on B')
    bob.send({ op: 'signal', room, to: alice.peer, data: ANSWER })
    bob.send({ op: 'signal', room, to: alice.peer, data: CANDIDATE })
    t.same(await alice.until((f) => f.op === 'signal'), { op: 'signal', room, from: bob.peer, data: ANSWER }, 'the answer reaches alice on A')
    t.same(await alice.until((f) => f.op === 'signal'), { op: 'signal', room, from: bob.peer, data: CANDIDATE }, 'then the candidate, in order')

    alice.send({ op: 'signal', room, to: `${bob.peer.split('.')[0]}.zzzz`, data: CANDIDATE, ref: 'nobody' })
    t.match(await alice.until((f) => f.ref === 'nobody'), { op: 'error', code: 'NOT_FOUND', ref: 'nobody' }, 'a peer id no instance has is NOT_FOUND')

    bob.ws.close()
    t.same(await alice.until((f) => f.op === 'peer-left'), { op: 'peer-left', room, peer: bob.peer }, 'alice hears bob leave')
  })

  t.test('room events and presence include rtc peers on both instances', async (t) => {
    const room = 'public:meeting'
    const peers = [await connectRtc(t, a), await connectRtc(t, b)]
    for (const peer of peers) await joinRoom(peer, room)
    await poll(async () => (await a.request('GET', `/api/rooms/${room}`, { headers: auth })).body.members === 2, 5000, 'presence of both peers')
    t.equal((await b.request('GET', `/api/rooms/${room}`, { headers: auth })).body.members, 2, 'B counts both too')
    const sent = await a.request('POST', `/api/rooms/${room}/events`, { headers: auth, body: { event: 'mute', data: { all: true } } })
    t.equal(sent.status, 202)
    for (const peer of peers) {
      t.same(await peer.until((f) => f.op === 'event'), { op: 'event', room, event: 'mute', data: { all: true }, id: sent.body.id })
    }
  })

  t.test('the peers of a killed instance leave: peer-left to the others, and no newcomer is told of them', async (t) => {
    const room = 'public:crash'
    const c = await startInstance(t, env, { name: 'C' })
    await c.waitReady()
    const alice = await connectRtc(t, a)
    await joinRoom(alice, room)
    const carol = await connectRtc(t, c)
    t.same((await joinRoom(carol, room)).peers, [alice.peer], 'carol on C meets alice on A')
    t.same(await alice.until((f) => f.op === 'peer-joined'), { op: 'peer-joined', room, peer: carol.peer })

    await c.crash()
    t.equal(await c.exited, 128 + 9, 'C was SIGKILLed: nothing announced that carol left')
    t.same(await alice.until((f) => f.op === 'peer-left', PRESENCE_TTL_MS + 10_000), { op: 'peer-left', room, peer: carol.peer },
      'alice hears carol leave once C\'s heartbeat has expired')

    const dave = await connectRtc(t, a)
    t.same((await joinRoom(dave, room)).peers, [alice.peer], 'a newcomer is not told of carol')
    t.same(await alice.until((f) => f.op === 'peer-joined'), { op: 'peer-joined', room, peer: dave.peer })
    t.equal(alice.all.filter((f) => f.op === 'peer-left').length, 1, 'carol\'s peer-left came once')
  })
})

t.test('the Redis bus lists live instances by member-id prefix: a crashed one drops out after the expiry, a closed one at once', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const [a, b, c] = [1, 2, 3].map(() => {
    const bus = new RedisBus({ redis: redis.url, keyPrefix: 'live', presenceTtlMs: 600, heartbeatMs: 150, commandTimeoutMs: 1000, maxBackoffMs: 200 })
    const registry = new RoomRegistry({ bus })
    t.after(() => registry.close())
    return { bus, registry }
  })
  await Promise.all([a, b, c].map(async ({ bus }) => { await bus.waitReady(10_000) }))
  t.equal(await a.registry.liveInstances(), null, 'unknown until this instance has been listed for a whole expiry')
  t.equal(a.registry.instanceTtlMs, 600)
  const prefixes = async () => [...(await a.registry.liveInstances()) ?? []].sort()
  const all = [a, b, c].map(({ registry }) => registry.instanceId).sort()
  await until(async () => (await prefixes()).length === 3, 5000, 'the three instances listed')
  t.same(await prefixes(), all)

  // node control started with a registry's member prefix lists it at once (before any member of it can act)
  const late = new RedisBus({ redis: redis.url, keyPrefix: 'live', presenceTtlMs: 600, heartbeatMs: 150 })
  t.after(() => late.close())
  late.control.start({ memberPrefix: 'feed01', direct: () => false })
  await late.waitReady(10_000)
  await until(async () => (await prefixes()).includes('feed01'), 5000, 'the prefix listed')
  await late.close()
  t.same(await prefixes(), all, 'and gone with its close')

  c.bus.destroy()
  await until(async () => (await prefixes()).length === 2, 5000, 'the crashed instance to drop out')
  t.same(await prefixes(), [a.registry.instanceId, b.registry.instanceId].sort())
  await b.registry.close()
  t.same(await prefixes(), [a.registry.instanceId], 'a clean shutdown leaves the list at once')
})
