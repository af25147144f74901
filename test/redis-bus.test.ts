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

function seqs (events: RoomEvent[]): number[] {
  return events.map((ev) => ev.seq)
}

t.test('a publish on instance A reaches members on instance B in publish order, with the same ids', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const onB = member(b.registry, 'u1')
  b.registry.join('public:lobby', onB)
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
})

t.test('ids increase across rooms and instances, and every member sees one order without duplicates', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const onA = member(a.registry)
  const onB = member(b.registry)
  for (const room of ['r1', 'r2']) {
    a.registry.join(room, onA)
    b.registry.join(room, onB)
  }
  // both instances publish concurrently to both rooms: own and remote events interleave on each instance
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => {
    const from = i % 2 === 0 ? a : b
    return from.registry.publish(i % 3 === 0 ? 'r1' : 'r2', 'n', i)
  }))
  const all = results.map((r) => parseId(r.id))
  t.equal(new Set(all.map((p) => p?.epoch)).size, 1, 'one epoch')
  t.equal(new Set(all.map((p) => p?.seq)).size, 60, 'every id distinct')
  await onA.until(() => onA.received.length === 60, '60 events on A')
  await onB.until(() => onB.received.length === 60, '60 events on B')
  const sorted = [...seqs(onA.received)].sort((x, y) => x - y)
  t.same(seqs(onA.received), sorted, 'A: strictly increasing (own events included once)')
  t.same(seqs(onB.received), seqs(onA.received), 'B sees the same order')
  t.equal(new Set(seqs(onA.received)).size, 60, 'no duplicates')
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
  t.same(upToDate, { events: [], recovered: true }, 'nothing missed from the latest id')
  const fresh = await b.registry.history('public:never', ids[4])
  t.same(fresh, { events: [], recovered: true }, 'a room that never had events is complete')
})

t.test('a resume from before trimmed events reports a gap, with what is still retained', async (t) => {
  const setup = await pair(t, { historySize: 3 })
  if (setup === null) return
  const { a, b } = setup
  const ids: string[] = []
  for (let i = 0; i < 6; i++) ids.push((await a.registry.publish('room', 'n', i)).id)
  const gap = await b.registry.history('room', ids[0])
  t.equal(gap.recovered, false)
  t.same(gap.events.map((ev) => ev.id), ids.slice(3), 'the last three are retained')
  const edge = await b.registry.history('room', ids[2])
  t.equal(edge.recovered, true, 'resuming right before the oldest retained event misses nothing')
  t.same(edge.events.map((ev) => ev.id), ids.slice(3))
})

t.test('with a history size of 0 nothing is replayed and only a resume from the latest id is complete', async (t) => {
  const setup = await pair(t, { historySize: 0 })
  if (setup === null) return
  const { a, b } = setup
  const first = await a.registry.publish('room', 'n', 1)
  const second = await a.registry.publish('room', 'n', 2)
  t.same(await b.registry.history('room', first.id), { events: [], recovered: false })
  t.same(await b.registry.history('room', second.id), { events: [], recovered: true })
})

t.test('a resume in a room whose history expired reports a gap', async (t) => {
  const setup = await pair(t, { historyTtlMs: 1000 })
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const first = await a.registry.publish('room', 'n', 1)
  const second = await a.registry.publish('room', 'n', 2)
  const epoch = parseId(first.id)?.epoch as string
  await until(async () => (await redis.command(['EXISTS', `${prefix}:h:${epoch}:room`])) === ':0', 10_000, 'the room stream to expire', 50)
  t.same(await b.registry.history('room', first.id), { events: [], recovered: false }, 'event 2 expired unseen')
  t.same(await b.registry.history('room', second.id), { events: [], recovered: true }, 'nothing was published after the latest id')
  const third = await b.registry.publish('room', 'n', 3)
  const after = await a.registry.history('room', first.id)
  t.equal(after.recovered, false, 'still a gap once the room has new events')
  t.same(after.events.map((ev) => ev.id), [third.id])
  t.equal((await a.registry.history('room', second.id)).recovered, true)
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
  t.equal(pn?.seq, 1, 'the counter started over')
  const resumed = await b.registry.history('room', old.id)
  t.equal(resumed.recovered, false)
  t.same(resumed.events.map((ev) => ev.id), [next.id], 'what the new epoch retains')
  const fromB = await b.registry.publish('room', 'n', 'b')
  t.equal(parseId(fromB.id)?.epoch, pn?.epoch, 'B follows the new epoch')
  t.same(await b.registry.history('room', 'not-an-id'), { events: (await b.registry.history('room', old.id)).events, recovered: false }, 'a malformed id is a gap too')
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
  t.same((await a.registry.list()).sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'chat', members: 4 }, { room: 'other', members: 1 }])
  b.registry.leaveAll(b1)
  await until(async () => (await a.registry.presence('chat')).members === 3, 5000, 'three members after bob left')
  t.same((await a.registry.presence('chat')).users.sort(), ['alice'])
  t.same(await a.registry.list(), [{ room: 'chat', members: 3 }])
})

t.test('a crashed instance\'s members disappear from presence after the expiry; a closed one at once', async (t) => {
  const setup = await pair(t, { presenceTtlMs: 600, heartbeatMs: 150 })
  if (setup === null) return
  const { redis, prefix, a, b } = setup
  const crashed = await instance(t, redis, { keyPrefix: prefix, presenceTtlMs: 600, heartbeatMs: 150 })
  a.registry.join('room', member(a.registry, 'a'))
  b.registry.join('room', member(b.registry, 'b'))
  crashed.registry.join('room', member(crashed.registry, 'c'))
  await until(async () => (await a.registry.presence('room')).members === 3, 5000, 'three members')
  crashed.bus.destroy()
  await until(async () => (await a.registry.presence('room')).members === 2, 5000, 'the crashed instance to fade out')
  t.same((await a.registry.presence('room')).users.sort(), ['a', 'b'])
  t.same(await a.registry.list(), [{ room: 'room', members: 2 }])
  await b.registry.close()
  t.same(await a.registry.presence('room'), { members: 1, users: ['a'] }, 'a clean shutdown removes its members immediately')
})

t.test('a direct message reaches a member on the other instance; an unknown member is false', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const peer = member(b.registry, 'u')
  b.registry.join('call', peer)
  await until(() => b.bus.isReady(), 5000, 'B resubscribed with its direct channel')
  t.equal(await a.registry.direct(peer.id, { type: 'offer', sdp: 'x' }), true)
  t.same(peer.directs, [{ type: 'offer', sdp: 'x' }])
  t.equal(await a.registry.direct(`${b.registry.instanceId}.zzz`, { type: 'candidate' }), false, 'B answers it has no such member')
  t.equal(await a.registry.direct('nobody.1', {}), false, 'no instance listens for that prefix')
  t.equal(await a.bus.direct('no-dot', {}), false)
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
  const before = await a.registry.publish('room', 'n', 'before')
  await onB.until(() => onB.received.length === 1, 'the first event on B')

  await redis.stop()
  await until(() => !a.bus.isReady() && !b.bus.isReady(), 5000, 'both buses to notice')
  t.equal(a.registry.isReady(), false)
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

t.test('live events missed while the subscription was down are counted and logged; later ones flow', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const warnings: string[] = []
  const log = { warn: (_obj: object, msg: string) => { warnings.push(msg) }, info: () => {} }
  const a = await instance(t, redis, { keyPrefix: 'miss' })
  const b = await instance(t, redis, { keyPrefix: 'miss', log })
  const onB = member(b.registry)
  b.registry.join('room', onB)
  await a.registry.publish('room', 'n', 1)
  await onB.until(() => onB.received.length === 1, 'the first event')
  b.bus.subscriber.disconnect() // a manual disconnect: no automatic reconnect until connect()
  await until(() => !b.bus.isReady(), 5000, 'B to notice')
  await a.registry.publish('room', 'n', 2)
  const own = await b.registry.publish('room', 'own', 'while unsubscribed')
  t.equal(own.delivered, 1, 'B\'s own publish still reaches B\'s members (no echo to wait for)')
  await b.bus.subscriber.connect()
  await b.bus.waitReady(5000)
  await a.registry.publish('room', 'n', 3)
  await onB.until(() => onB.received.length === 3, 'the event after the resubscription')
  t.same(onB.received.map((ev) => ev.data), [1, 'while unsubscribed', 3])
  t.equal(b.bus.stats.missed, 2, 'event 2 and B\'s own echo went by while unsubscribed')
  t.ok(warnings.some((w) => w.includes('missed')), 'a warning names the loss')
  t.equal(b.bus.stats.delivered, 2, 'remote deliveries: 1 and 3')
})

t.test('events for rooms without local members are not delivered, and a closed bus refuses to publish', async (t) => {
  const setup = await pair(t)
  if (setup === null) return
  const { a, b } = setup
  const onB = member(b.registry)
  b.registry.join('here', onB)
  await a.registry.publish('elsewhere', 'n', 1)
  await a.registry.publish('here', 'n', 2)
  await onB.until(() => onB.received.length === 1, 'the event of the joined room')
  t.equal(b.bus.stats.delivered, 1, 'the other room\'s event was skipped')
  t.equal(b.bus.stats.received, 2)
  await a.bus.close()
  t.equal(a.bus.isReady(), false)
  await t.rejects(async () => { await a.bus.append({ room: 'here', event: 'n', data: 1 }) }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await a.bus.history('here', '') }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await b.bus.append({ room: 'here', event: 'n', data: 10n }) }, { code: 'GW_BAD_DATA' })
})

t.test('options are validated and a bad one is named', async (t) => {
  t.throws(() => new RedisBus({ redis: 'http://x', historySize: 1 }), { code: 'GW_INVALID_OPTIONS', message: /redis/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', presenceTtlMs: 1000, heartbeatMs: 1000 }), { message: /heartbeatMs/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', keyPrefix: 'has space' }), { message: /keyPrefix/ })
  t.throws(() => new RedisBus({ redis: 'redis://127.0.0.1:1', nope: 1 } as unknown as RedisBusOptions), { message: /unknown option "nope"/ })
})

t.test('waitReady rejects when Redis cannot be reached, and close still ends the connections', async (t) => {
  const bus = new RedisBus({ redis: 'redis://127.0.0.1:1', maxBackoffMs: 50 })
  t.after(() => bus.close())
  await t.rejects(bus.waitReady(300), { code: 'GW_BUS_UNAVAILABLE' })
  t.equal(bus.isReady(), false)
  await t.rejects(async () => { await bus.append({ room: 'r', event: 'e', data: 1 }) }, { code: 'GW_BUS_UNAVAILABLE' })
  await t.rejects(async () => { await bus.presence('r', { members: 0, users: [] }) }, { code: 'GW_BUS_UNAVAILABLE' })
  t.equal(await bus.direct('x.1', {}), false)
  await bus.close()
  t.not(bus.command.status, 'ready')
  t.not(bus.subscriber.status, 'ready')
})
