import t, { type Test } from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { RedisBus, type RedisBusOptions } from '../lib/redis/bus.js'
import { parseId } from '../lib/rooms/ids.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'
import { startRedis, until, type RedisServer } from './helpers/redis.js'

const encoder: Encoder<string> = { name: 'test', encode: (ev) => `${ev.id}|${ev.room}|${ev.event}|${ev.dataJson}` }

interface TestMember extends Member<string> {
  received: RoomEvent[]
  frames: string[]
  directs: unknown[]
  /** resolves once `check()` holds, re-checked on every delivery; rejects after `timeoutMs` */
  until (check: () => boolean, what: string, timeoutMs?: number): Promise<void>
}

function member (registry: RoomRegistry, user: string | null = null): TestMember {
  const wakers = new Set<() => void>()
  const wake = () => { for (const w of [...wakers]) w() }
  const m: TestMember = {
    id: registry.nextMemberId(),
    user,
    transport: 'test',
    encoder,
    received: [],
    frames: [],
    directs: [],
    deliver (frame, event) {
      m.frames.push(frame)
      m.received.push(event)
      wake()
    },
    direct (message) {
      m.directs.push(message)
      wake()
    },
    async until (check, what, timeoutMs = 5000) {
      if (check()) return
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          wakers.delete(waker)
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${m.received.length} events)`))
        }, timeoutMs)
        const waker = () => {
          if (!check()) return
          clearTimeout(timer)
          wakers.delete(waker)
          resolve()
        }
        wakers.add(waker)
      })
    }
  }
  return m
}

let prefixes = 0
interface Instance { bus: RedisBus, registry: RoomRegistry }

/** One "instance": a RedisBus and the registry over it, closed after the test. */
async function instance (t: Test, redis: RedisServer, options: Partial<RedisBusOptions> & { keyPrefix: string }): Promise<Instance> {
  const bus = new RedisBus({ redis: redis.url, historySize: 100, commandTimeoutMs: 1000, maxBackoffMs: 200, ...options })
  const registry = new RoomRegistry({ bus })
  t.after(() => registry.close())
  await bus.waitReady(10_000)
  return { bus, registry }
}

/** Two instances sharing one Redis and one prefix. */
async function pair (t: Test, options: Partial<RedisBusOptions> = {}) {
  const redis = await startRedis(t)
  if (redis === null) return null
  const prefix = `t${++prefixes}`
  const a = await instance(t, redis, { keyPrefix: prefix, ...options })
  const b = await instance(t, redis, { keyPrefix: prefix, ...options })
  return { redis, prefix, a, b }
}

function offsets (events: RoomEvent[]): number[] {
  return events.map((ev) => ev.offset)
}

/** Subscribers of a channel, from Redis itself. */
async function numsub (redis: RedisServer, channel: string): Promise<number> {
  const reply = await redis.command(['PUBSUB', 'NUMSUB', channel])
  return Number(reply.trim().split('\r\n').at(-1)?.replace(':', ''))
}

t.test('a publish on instance A reaches members on instance B in publish order, with the same ids', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const onB = member(b.registry, 'u1')
  b.registry.join('public:lobby', onB)
  await b.bus.waitReady(5000)
  const ids: string[] = []
  for (let i = 0; i < 20; i++) {
    const result = await a.registry.publish('public:lobby', 'tick', { i })
    t.equal(result.delivered, 0, 'delivered counts the publishing instance\'s members only')
    ids.push(result.id)
  }
  await onB.until(() => onB.received.length === 20, '20 events on B')
  t.same(onB.received.map((ev) => ev.id), ids, 'same ids, same order')
  t.same(onB.received.map((ev) => ev.data), Array.from({ length: 20 }, (_, i) => ({ i })))
  t.equal(onB.frames[0], `${ids[0]}|public:lobby|tick|{"i":0}`, 'encoded by the member\'s encoder from the carried JSON')
  t.same(offsets(onB.received), Array.from({ length: 20 }, (_, i) => i + 1), 'offsets count the room\'s events')
})

t.test('concurrent publishes of both instances to two rooms: every member gets each room in offset order, once', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const onA = member(a.registry)
  const onB = member(b.registry)
  for (const room of ['r1', 'r2']) {
    a.registry.join(room, onA)
    b.registry.join(room, onB)
  }
  // joined once each room's position is read (what the ws gateway waits for before `joined`)
  await Promise.all(['r1', 'r2'].flatMap((room) => [a.registry.position(room), b.registry.position(room)]))
  await Promise.all([a.bus.waitReady(5000), b.bus.waitReady(5000)])
  // both instances publish concurrently to both rooms: own answers, own echoes and remote events interleave
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => {
    const from = i % 2 === 0 ? a : b
    return from.registry.publish(i % 3 === 0 ? 'r1' : 'r2', 'n', i)
  }))
  t.equal(new Set(results.map((r) => r.id)).size, 60, 'every id distinct')
  t.ok(results.every((r) => r.delivered === 1), 'each publish counted its own instance\'s member')
  await onA.until(() => onA.received.length === 60, '60 events on A')
  await onB.until(() => onB.received.length === 60, '60 events on B')
  for (const room of ['r1', 'r2']) {
    const count = room === 'r1' ? 20 : 40
    const expected = Array.from({ length: count }, (_, i) => i + 1)
    t.same(offsets(onA.received.filter((ev) => ev.room === room)), expected, `A: ${room} in offset order, own events once`)
    t.same(onB.received.filter((ev) => ev.room === room).map((ev) => ev.id), onA.received.filter((ev) => ev.room === room).map((ev) => ev.id), `B: ${room} the same`)
  }
})

t.test('publish with except leaves that member out on the publishing instance', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a } = setup
  const sender = member(a.registry)
  const other = member(a.registry)
  a.registry.join('r', sender)
  a.registry.join('r', other)
  await a.bus.waitReady(5000)
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await a.registry.publish('r', 'n', i, { except: sender.id })))
  t.ok(results.every((r) => r.delivered === 1))
  await other.until(() => other.received.length === 10, 'ten events')
  const sentinel = await a.registry.publish('r', 'n', 'all')
  t.equal(sentinel.delivered, 2)
  t.same(sender.received.map((ev) => ev.id), [sentinel.id], 'the excepted member got none of the ten')
})

t.test('history on B resumes from an id A issued, exactly', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await a.registry.publish('public:news', 'n', i)).id)
  await a.registry.publish('public:other', 'n', 'elsewhere')
  const resumed = await b.registry.history('public:news', ids[1])
  t.equal(resumed.recovered, true)
  t.same(resumed.events.map((ev) => ev.id), ids.slice(2))
  t.same(resumed.events.map((ev) => ev.data), [2, 3, 4])
  t.same(resumed.events.map((ev) => ev.event), ['n', 'n', 'n'])
  t.ok(resumed.events.every((ev) => ev.room === 'public:news' && ev.time > 0))
  const upToDate = await b.registry.history('public:news', ids[4])
  t.same([upToDate.events, upToDate.recovered], [[], true], 'nothing missed from the latest id')
  const quiet = await b.registry.position('public:never')
  t.same(quiet.offset, 0, 'a room without events starts at 0 under an epoch of its own')
  const fresh = await a.registry.history('public:never', `${quiet.epoch}-0`)
  t.same([fresh.events, fresh.recovered], [[], true], 'a room that never had events is complete from its position')
  t.equal((await b.registry.history('public:never', ids[4])).recovered, false, 'another room\'s id cannot be placed')
})

t.test('history is trimmed approximately: at least historySize kept; a resume from before what is kept is a gap', async (t) => {
  const setup = await pair(t, { historySize: 3 })
  if (setup === null) return
  const { a, b } = setup
  const ids: string[] = []
  for (let i = 0; i < 250; i++) ids.push((await a.registry.publish('room', 'n', i)).id)
  const gap = await b.registry.history('room', ids[0])
  t.equal(gap.recovered, false)
  const kept = gap.events.map((ev) => ev.id)
  t.ok(kept.length >= 3 && kept.length < 250, `${kept.length} kept: whole stream nodes are trimmed`)
  t.same(kept, ids.slice(250 - kept.length), 'the newest ones')
  const edge = await b.registry.history('room', ids[250 - kept.length - 1])
  t.equal(edge.recovered, true, 'resuming right before the oldest kept event misses nothing')
  t.same(edge.events.map((ev) => ev.id), kept)
  t.equal((await b.registry.history('room', ids[250 - kept.length - 2])).recovered, false, 'one earlier is a gap')
})

t.test('with a history size of 0 nothing is replayed and only a resume from the latest id is complete', async (t) => {
  const setup = await pair(t, { historySize: 0 })
  if (setup === null) return
  const { a, b } = setup
  const first = await a.registry.publish('room', 'n', 1)
  const second = await a.registry.publish('room', 'n', 2)
  t.same(await b.registry.history('room', first.id), { events: [], recovered: false, position: parseId(second.id) })
  t.same((await b.registry.history('room', second.id)).recovered, true)
})

t.test('an event larger than historyEventMaxBytes is delivered but not kept: a resume across it is a gap', async (t) => {
  const setup = await pair(t, { historyEventMaxBytes: 1000 })
  if (setup === null) return
  const { a, b } = setup
  const onB = member(b.registry)
  b.registry.join('room', onB)
  await b.bus.waitReady(5000)
  const small = await a.registry.publish('room', 'n', 1)
  const big = await a.registry.publish('room', 'n', 'x'.repeat(2000))
  const after = await a.registry.publish('room', 'n', 3)
  await onB.until(() => onB.received.length === 3, 'all three live')
  const across = await b.registry.history('room', small.id)
  t.same([across.recovered, across.events.map((ev) => ev.id)], [false, [after.id]])
  t.same([(await b.registry.history('room', big.id)).recovered], [true])
})

t.test('a resume in a room whose history expired reports a gap, and the room starts a new epoch', async (t) => {
  const setup = await pair(t, { historyTtlMs: 1000 })
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const first = await a.registry.publish('room', 'n', 1)
  const second = await a.registry.publish('room', 'n', 2)
  await until(async () => (await redis.command(['EXISTS', `${prefix}:{room}:m`])) === ':0', 10_000, 'the room to expire', 50)
  t.equal(await redis.command(['EXISTS', `${prefix}:{room}:h`]), ':0', 'its stream expired with it')
  t.same(await b.registry.history('room', first.id), { events: [], recovered: false }, 'event 2 expired unseen')
  t.same(await b.registry.history('room', second.id), { events: [], recovered: false }, 'nothing left to tell: a gap')
  const third = await b.registry.publish('room', 'n', 3)
  t.not(parseId(third.id)?.epoch, parseId(first.id)?.epoch, 'a new epoch')
  t.equal(parseId(third.id)?.offset, 1)
  const after = await a.registry.history('room', first.id)
  t.equal(after.recovered, false, 'still a gap once the room has new events')
  t.same(after.events.map((ev) => ev.id), [third.id])
})

t.test('after Redis loses its data, ids come from a new epoch and old ids resume with a gap', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { redis, a, b } = setup
  const old = await a.registry.publish('room', 'n', 'before')
  t.equal(await redis.command(['FLUSHALL']), '+OK')
  const next = await a.registry.publish('room', 'n', 'after')
  const [po, pn] = [parseId(old.id), parseId(next.id)]
  t.not(pn?.epoch, po?.epoch, 'a new epoch')
  t.equal(pn?.offset, 1, 'the room counts from 1 again')
  const resumed = await b.registry.history('room', old.id)
  t.equal(resumed.recovered, false)
  t.same(resumed.events.map((ev) => ev.id), [next.id], 'what the new epoch retains')
  const fromB = await b.registry.publish('room', 'n', 'b')
  t.equal(parseId(fromB.id)?.epoch, pn?.epoch, 'B follows the new epoch')
  const malformed = await b.registry.history('room', 'not-an-id')
  t.same([malformed.recovered, malformed.events.map((ev) => ev.id)], [false, [next.id, fromB.id]], 'a malformed id is a gap too')
})

t.test('presence counts the members of both instances and their distinct users; leaving updates it', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const a1 = member(a.registry, 'alice')
  const a2 = member(a.registry, null)
  const b1 = member(b.registry, 'bob')
  const b2 = member(b.registry, 'alice')
  for (const m of [a1, a2]) a.registry.join('chat', m)
  for (const m of [b1, b2]) b.registry.join('chat', m)
  b.registry.join('other', b1)
  await until(async () => (await a.registry.presence('chat')).members === 4, 5000, 'four members seen from A')
  const fromA = await a.registry.presence('chat')
  t.same(fromA.users.sort(), ['alice', 'bob'])
  const fromB = await b.registry.presence('chat')
  t.equal(fromB.members, 4)
  t.same(fromB.users.sort(), ['alice', 'bob'])
  await until(async () => (await a.registry.list()).length === 2, 5000, 'both rooms listed')
  t.same((await a.registry.list()).sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'chat', members: 4 }, { room: 'other', members: 1 }])
  b.registry.leaveAll(b1)
  await until(async () => (await a.registry.presence('chat')).members === 3, 5000, 'three members after bob left')
  t.same((await a.registry.presence('chat')).users.sort(), ['alice'])
  await until(async () => (await a.registry.list()).length === 1, 5000, 'the other room gone from the list')
  t.same(await a.registry.list(), [{ room: 'chat', members: 3 }])
})

t.test('a crashed instance\'s members disappear from presence after the expiry; a closed one at once', async (t) => {
  const setup = await pair(t, { presenceTtlMs: 1500, heartbeatMs: 300 })
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const crashed = await instance(t, redis, { keyPrefix: prefix, presenceTtlMs: 1500, heartbeatMs: 300 })
  a.registry.join('room', member(a.registry, 'a'))
  b.registry.join('room', member(b.registry, 'b'))
  crashed.registry.join('room', member(crashed.registry, 'c'))
  await until(async () => (await a.registry.presence('room')).members === 3, 5000, 'three members')
  crashed.bus.destroy()
  await until(async () => (await a.registry.presence('room')).members === 2, 10_000, 'the crashed instance to fade out')
  t.same((await a.registry.presence('room')).users.sort(), ['a', 'b'])
  await until(async () => (await a.registry.list()).length === 1 && (await a.registry.list())[0].members === 2, 5000, 'the list without it')
  await b.registry.close()
  t.same(await a.registry.presence('room'), { members: 1, users: ['a'] }, 'a clean shutdown removes its members immediately')
})

t.test('a direct message reaches a member on the other instance; an unknown member is false', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const peer = member(b.registry, 'u')
  b.registry.join('call', peer)
  await b.bus.waitReady(5000)
  t.equal(await a.registry.direct(peer.id, { type: 'offer', sdp: 'x' }), true)
  t.same(peer.directs, [{ type: 'offer', sdp: 'x' }])
  t.equal(await a.registry.direct(`${b.registry.instanceId}.zzz`, { type: 'candidate' }), false, 'B answers it has no such member')
  t.equal(await a.registry.direct('nobody.1', {}), false, 'no instance listens for that prefix')
  t.equal(await a.bus.control.direct('no-dot', {}), false)
  t.equal(await a.bus.control.direct(peer.id, 10n), false, 'a message JSON cannot carry')
  t.same(peer.directs.length, 1)
})

t.test('when Redis stops, the bus is not ready and publish rejects at once; after a restart delivery resumes', async (t) => {
  const setup = await pair(t, { presenceTtlMs: 3000, heartbeatMs: 200 })
  if (setup === null) return
  const { redis, a, b } = setup
  const onA = member(a.registry, 'a')
  const onB = member(b.registry, 'b')
  a.registry.join('room', onA)
  b.registry.join('room', onB)
  await Promise.all([a.bus.waitReady(5000), b.bus.waitReady(5000)])
  const before = await a.registry.publish('room', 'n', 'before')
  await onB.until(() => onB.received.length === 1, 'the first event on B')

  await redis.stop()
  await until(() => !a.bus.isReady() && !b.bus.isReady(), 5000, 'both buses to notice')
  t.equal(a.registry.isReady(), false)
  t.same(a.registry.failing(), ['redis'])
  await t.rejects(async () => { await a.registry.publish('room', 'n', 'lost') }, { code: 'GW_BUS_UNAVAILABLE', statusCode: 503 })
  await t.rejects(async () => { await b.registry.history('room', before.id) }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await b.registry.presence('room') }, { code: 'GW_BUS_UNAVAILABLE' })
  t.equal(await a.registry.direct(onB.id, {}), false, 'a direct message cannot cross')
  t.equal(onA.received.length, 1, 'the refused publish reached nobody')

  await redis.start()
  await a.bus.waitReady(10_000)
  await b.bus.waitReady(10_000)
  const after = await a.registry.publish('room', 'n', 'after')
  await onB.until(() => onB.received.length === 2, 'the event after the restart on B')
  t.equal(onB.received[1].id, after.id)
  t.not(parseId(after.id)?.epoch, parseId(before.id)?.epoch, 'Redis lost its data: a new epoch')
  await until(async () => (await a.registry.presence('room')).members === 2, 5000, 'presence rewritten after the restart')
  t.same((await b.registry.presence('room')).users.sort(), ['a', 'b'])
})

t.test('events missed while a subscription was down are replayed to the live members when it is back', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const warnings: string[] = []
  const log = { warn: (_obj: object, msg: string) => { warnings.push(msg) }, info: () => {} }
  const a = await instance(t, redis, { keyPrefix: 'miss' })
  const b = await instance(t, redis, { keyPrefix: 'miss', log, commandTimeoutMs: 300 })
  const onB = member(b.registry)
  b.registry.join('room', onB)
  await b.registry.position('room')
  await b.bus.waitReady(15_000)
  await a.registry.publish('room', 'n', 1)
  await onB.until(() => onB.received.length === 1, 'the first event')
  const subscriber = b.bus.core.subscriptions?.connections()[0]
  subscriber?.disconnect() // a manual disconnect: the command connection stays up, no automatic reconnect until connect()
  await until(() => b.registry.failing().includes('redis:subscriptions'), 5000, 'B to report its subscription')
  t.same(b.registry.failing(), ['redis:subscriptions'], 'connected, but not subscribed: not ready, with the reason')
  const missed = [await a.registry.publish('room', 'n', 2), await a.registry.publish('room', 'n', 3)]
  t.equal(onB.received.length, 1, 'B could not receive them')
  await subscriber?.connect()
  await b.bus.waitReady(15_000)
  await onB.until(() => onB.received.length === 3, 'the missed events, caught up from history when the subscription is back')
  t.same(onB.received.slice(1).map((ev) => ev.id), missed.map((m) => m.id))
  t.ok(warnings.some((w) => w.includes('subscriber connection lost')), 'the loss was logged')

  // again, and now B publishes too: its own event waits for the ones before it, which history provides
  subscriber?.disconnect()
  await until(() => b.registry.failing().includes('redis:subscriptions'), 5000, 'B to report its subscription again')
  await a.registry.publish('room', 'n', 4)
  const own = await b.registry.publish('room', 'own', 'while unsubscribed')
  t.equal(own.delivered, 1, 'B\'s own publish reached B\'s member, after the event before it')
  t.same(onB.received.map((ev) => ev.data), [1, 2, 3, 4, 'while unsubscribed'])
  await subscriber?.connect()
  await b.bus.waitReady(15_000)
  await a.registry.publish('room', 'n', 5)
  await onB.until(() => onB.received.length === 6, 'the event after the resubscription')
  t.same(onB.received.map((ev) => ev.data), [1, 2, 3, 4, 'while unsubscribed', 5], 'in offset order, none lost, none twice')
  t.same(offsets(onB.received), [1, 2, 3, 4, 5, 6])
})

t.test('an instance receives the events of rooms it has members in only; subscriptions follow members', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const onB = member(b.registry)
  b.registry.join('here', onB)
  await b.bus.waitReady(15_000)
  t.equal(await numsub(redis, `${prefix}:{here}:c`), 1, 'B subscribed to the room it has a member in')
  t.equal(await numsub(redis, `${prefix}:{elsewhere}:c`), 0, 'nobody to the other')
  await a.registry.publish('elsewhere', 'n', 1)
  await a.registry.publish('here', 'n', 2)
  await onB.until(() => onB.received.length === 1, 'the event of the joined room')
  t.equal(b.bus.broker.stats.received, 1, 'B received the one event of its room, nothing of the other')
  b.registry.leave('here', onB)
  await until(async () => await numsub(redis, `${prefix}:{here}:c`) === 0, 5000, 'B to unsubscribe after its last member left')
  await a.registry.publish('here', 'n', 3)
  const sentinel = member(b.registry)
  b.registry.join('sentinel', sentinel)
  await b.bus.waitReady(5000)
  await a.registry.publish('sentinel', 'n', 4)
  await sentinel.until(() => sentinel.received.length === 1, 'a later event of another room')
  // the first may come from the catch-up read; the second comes on the subscription, after whatever was sent before
  await a.registry.publish('sentinel', 'n', 5)
  await sentinel.until(() => sentinel.received.length === 2, 'a second one')
  t.equal(b.bus.broker.stats.received, 3, 'nothing of the room it left: 2, then the sentinel room\'s 4 and 5')
  t.same(onB.received.map((ev) => ev.data), [2])
})

t.test('many joins in one tick subscribe with one command; a leave and a rejoin in one tick cost none', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { redis, prefix, b } = setup
  const subscriptions = b.bus.core.subscriptions
  if (subscriptions === null) throw new Error('not open')
  const before = subscriptions.stats.subscribeCommands
  const channels = subscriptions.size
  const m = member(b.registry)
  for (let i = 0; i < 50; i++) b.registry.join(`room-${i}`, m)
  await b.bus.waitReady(5000)
  t.equal(subscriptions.stats.subscribeCommands - before, 1, 'one SUBSCRIBE for 50 rooms')
  t.equal(await numsub(redis, `${prefix}:{room-49}:c`), 1)
  const unsubscribes = subscriptions.stats.unsubscribeCommands
  const commands = subscriptions.stats.subscribeCommands
  b.registry.leave('room-3', m)
  b.registry.join('room-3', m)
  await new Promise((resolve) => setImmediate(resolve))
  await b.bus.waitReady(5000)
  t.equal(subscriptions.stats.unsubscribeCommands, unsubscribes, 'no UNSUBSCRIBE')
  t.equal(subscriptions.stats.subscribeCommands, commands, 'no SUBSCRIBE')
  b.registry.leaveAll(m)
  await until(async () => await numsub(redis, `${prefix}:{room-0}:c`) === 0, 5000, 'every room left')
  t.equal(subscriptions.size, channels, 'only the control channels are left')
})

t.test('a failing publish makes the bus unready until one succeeds or a heartbeat does', async (t) => {
  const setup = await pair(t, { presenceTtlMs: 3000, heartbeatMs: 200 })
  if (setup === null) return
  const { redis, a } = setup
  t.equal(await redis.command(['CONFIG', 'SET', 'maxmemory', '1']), '+OK')
  t.after(async () => { await redis.command(['CONFIG', 'SET', 'maxmemory', '0']) })
  await t.rejects(async () => { await a.registry.publish('room', 'n', 'x'.repeat(100)) }, { code: 'GW_BUS_UNAVAILABLE', message: /OOM/ })
  t.same(a.registry.failing(), ['redis'], 'connected, but a publish failed: not ready')
  t.equal(await redis.command(['CONFIG', 'SET', 'maxmemory', '0']), '+OK')
  await until(() => a.registry.isReady(), 5000, 'the next heartbeat to restore readiness')
  await a.registry.publish('room', 'n', 'ok')
})

t.test('a position beyond what Redis holds (writes lost in a failover) starts a new epoch on catch-up', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const onB = member(b.registry)
  b.registry.join('room', onB)
  await b.bus.waitReady(5000)
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await a.registry.publish('room', 'n', i)).id)
  await onB.until(() => onB.received.length === 5, 'five events')
  // as after a failover to a replica that missed the last three writes: the room's counter and stream went back
  t.equal(await redis.command(['HSET', `${prefix}:{room}:m`, 'o', '2']), ':0')
  await redis.command(['DEL', `${prefix}:{room}:h`])
  for (const offset of [1, 2]) await redis.command(['XADD', `${prefix}:{room}:h`, `${offset}-0`, 'e', 'n', 'd', String(offset - 1), 't', '0'])
  t.equal((await b.registry.history('room', ids[4])).recovered, false, 'a client\'s position beyond the counter is a gap')
  t.equal(parseId((await a.registry.publish('room', 'n', 'x')).id)?.epoch, parseId(ids[0])?.epoch, 'a client\'s position does not change the epoch')
  const subscriber = b.bus.core.subscriptions?.connections()[0]
  subscriber?.disconnect()
  await until(() => subscriber?.status === 'end', 5000, 'the subscriber to be down')
  await subscriber?.connect()
  await until(async () => parseId((await a.registry.publish('room', 'n', 'probe')).id)?.epoch !== parseId(ids[0])?.epoch, 5000, 'B\'s catch-up to start a new epoch')
  const resumed = await a.registry.history('room', ids[1])
  t.equal(resumed.recovered, false, 'every position of the old epoch resumes with a gap now')
})

t.test('a host may pass its own ioredis client; the bus does not close it', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const { Redis } = await import('ioredis')
  const client = new Redis(redis.url)
  t.after(() => { client.disconnect() })
  const bus = new RedisBus({ redis: client, keyPrefix: 'own' })
  const registry = new RoomRegistry({ bus })
  const m = member(registry)
  registry.join('r', m)
  await bus.waitReady(5000)
  const { id, delivered } = await registry.publish('r', 'e', 1)
  t.equal(delivered, 1)
  t.match(id, /^[a-z0-9]+-1$/)
  await registry.close()
  t.equal(client.status, 'ready', 'still open: it is the host\'s')
})

t.test('options are validated and a bad one is named', async (t) => {
  t.throws(() => new RedisBus({ redis: 'http://x', historySize: 1 }), { code: 'GW_INVALID_OPTIONS', message: /redis/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', presenceTtlMs: 1000, heartbeatMs: 1000 }), { message: /heartbeatMs/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', keyPrefix: 'has space' }), { message: /keyPrefix/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', nope: 1 } as unknown as RedisBusOptions), { message: /unknown option "nope"/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', cluster: ['127.0.0.1:1'] }), { message: /exactly one of redis/ })
  t.throws(() => new RedisBus({}), { message: /exactly one of redis/ })
  t.throws(() => new RedisBus({ cluster: ['nope'] }), { message: /host:port/ })
})

t.test('waitReady rejects when Redis cannot be reached, and close still ends the connections', async (t) => {
  const bus = new RedisBus({ redis: 'redis://127.0.0.1:1', maxBackoffMs: 50 })
  const registry = new RoomRegistry({ bus })
  t.after(() => registry.close())
  await t.rejects(bus.waitReady(300), { code: 'GW_BUS_UNAVAILABLE' })
  t.equal(bus.isReady(), false)
  t.same(registry.failing(), ['redis'])
  await t.rejects(async () => { await registry.publish('r', 'e', 1) }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await registry.presence('r') }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await registry.history('r', 'x-1') }, { code: 'GW_BUS_UNAVAILABLE' })
  t.equal(await registry.direct('x.1', {}), false)
  t.equal(await registry.liveInstances(), null)
  await registry.close()
  t.not(bus.core.command?.status, 'ready')
  t.same(registry.failing(), ['closed'])
})
