import t from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import type { Encoder, Member, PublishResult, RoomEvent } from '../lib/rooms/types.js'

let encodeCalls = 0
const jsonEncoder: Encoder<string> = {
  name: 'test-json',
  encode (ev) {
    encodeCalls++
    return `{"room":${JSON.stringify(ev.room)},"event":${JSON.stringify(ev.event)},"data":${ev.dataJson},"id":"${ev.id}"}`
  }
}
const upperEncoder: Encoder<string> = { name: 'test-upper', encode: (ev) => ev.event.toUpperCase() }

type TestMember = Member<string> & { received: string[], events: RoomEvent[], directs: unknown[] }

function member (registry: RoomRegistry, user: string | null = null, encoder: Encoder<string> = jsonEncoder): TestMember {
  const m: TestMember = {
    id: registry.nextMemberId(),
    user,
    transport: 'test',
    encoder,
    received: [],
    events: [],
    directs: [],
    deliver (encoded, ev) {
      m.received.push(encoded)
      m.events.push(ev)
    },
    direct (message) { m.directs.push(message) }
  }
  return m
}

const sync = (r: unknown) => r as PublishResult

t.test('a published event reaches every member of the room once, encoded once per transport', async (t) => {
  const registry = new RoomRegistry()
  const members = Array.from({ length: 50 }, () => member(registry))
  const others = Array.from({ length: 5 }, () => member(registry, null, upperEncoder))
  for (const m of [...members, ...others]) registry.join('public:lobby', m)
  const outsider = member(registry)
  registry.join('public:other', outsider)
  encodeCalls = 0
  const result = registry.publish('public:lobby', 'notification', { title: 'New Message!' })
  t.notOk(result instanceof Promise, 'synchronous with the in-memory bus')
  const { id, delivered } = sync(result)
  t.equal(delivered, 55)
  t.equal(encodeCalls, 1, 'one JSON encoding shared by 50 members')
  for (const m of members) t.same(m.received, [`{"room":"public:lobby","event":"notification","data":{"title":"New Message!"},"id":"${id}"}`])
  for (const m of others) t.same(m.received, ['NOTIFICATION'])
  t.same(outsider.received, [])
})

t.test('ten thousand members each receive the event', async (t) => {
  const registry = new RoomRegistry()
  const members = Array.from({ length: 10_000 }, () => member(registry))
  for (const m of members) registry.join('big', m)
  t.equal(sync(registry.publish('big', 'tick', 1)).delivered, 10_000)
  t.ok(members.every((m) => m.received.length === 1))
})

t.test('a member that throws on send does not stop delivery to the others', async (t) => {
  const failures: string[] = []
  const registry = new RoomRegistry({ onDeliveryError: (_err, m) => failures.push(m.id) })
  const before = member(registry)
  const broken = member(registry)
  broken.deliver = () => { throw new Error('socket gone') }
  const after = member(registry)
  for (const m of [before, broken, after]) registry.join('r', m)
  const { delivered } = sync(registry.publish('r', 'e', null))
  t.equal(delivered, 2)
  t.same(failures, [broken.id])
  t.equal(before.received.length, 1)
  t.equal(after.received.length, 1)
})

t.test('join, leave and leaveAll keep rooms, sizes and presence exact', async (t) => {
  const registry = new RoomRegistry()
  const alice1 = member(registry, 'alice')
  const alice2 = member(registry, 'alice')
  const bob = member(registry, 'bob')
  const anon = member(registry)
  t.equal(registry.join('chat', alice1), true)
  t.equal(registry.join('chat', alice1), false, 'joining twice is a no-op')
  registry.join('chat', alice2)
  registry.join('chat', bob)
  registry.join('chat', anon)
  registry.join('news', bob)
  t.equal(registry.size('chat'), 4)
  t.same(registry.presence('chat'), { members: 4, users: ['alice', 'bob'] })
  t.same(registry.list(), [{ room: 'chat', members: 4 }, { room: 'news', members: 1 }])
  t.same(registry.roomsOf(bob.id).sort(), ['chat', 'news'])
  t.equal(registry.leave('chat', alice1), true)
  t.equal(registry.leave('chat', alice1), false, 'leaving twice is a no-op')
  t.same(registry.presence('chat'), { members: 3, users: ['alice', 'bob'] }, 'alice still has a second connection')
  t.same(registry.leaveAll(bob).sort(), ['chat', 'news'])
  t.same(registry.presence('chat'), { members: 2, users: ['alice'] })
  t.equal(registry.size('news'), 0)
  t.same(registry.members('chat').map((m) => m.id), [alice2.id, anon.id])
  registry.leaveAll(alice2)
  registry.leaveAll(anon)
  t.same(registry.list(), [], 'empty rooms are removed')
  t.same(registry.leaveAll(anon), [])
  t.same(registry.presence('nowhere'), { members: 0, users: [] })
})

t.test('publish excludes a member on request', async (t) => {
  const registry = new RoomRegistry()
  const a = member(registry)
  const b = member(registry)
  registry.join('r', a)
  registry.join('r', b)
  t.equal(sync(registry.publish('r', 'e', 1, { except: a.id })).delivered, 1)
  t.same(a.received, [])
  t.equal(b.received.length, 1)
})

t.test('invalid room names, event names and data are refused with codes', async (t) => {
  const registry = new RoomRegistry()
  const m = member(registry)
  t.throws(() => registry.join('', m), { code: 'GW_INVALID_ROOM' })
  t.throws(() => registry.join('x'.repeat(129), m), { code: 'GW_INVALID_ROOM' })
  t.throws(() => registry.join('bad room', m), { code: 'GW_INVALID_ROOM' })
  t.doesNotThrow(() => registry.join('A-z_0.9:@x-' + 'y'.repeat(117), m), '128 characters of the allowed set')
  t.throws(() => registry.publish('ok', 'has space', 1), { code: 'GW_INVALID_EVENT' })
  t.throws(() => registry.publish('ok', 'line\nbreak', 1), { code: 'GW_INVALID_EVENT' })
  t.throws(() => registry.publish('ok', '', 1), { code: 'GW_INVALID_EVENT' })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.throws(() => registry.publish('ok', 'e', circular), { code: 'GW_BAD_DATA' })
  t.throws(() => registry.publish('ok', 'e', 10n), { code: 'GW_BAD_DATA' })
  t.throws(() => registry.publish('ok', 'e', () => 1), { code: 'GW_BAD_DATA' })
  const nothing = sync(registry.publish('ok', 'e', undefined))
  t.equal(nothing.delivered, 0, 'undefined data is published as null')
  const { events } = registry.history('ok', nothing.id.replace(/-\d+$/, '-0')) as { events: RoomEvent[] }
  t.equal(events.at(-1)?.dataJson, 'null')
})

t.test('event ids strictly increase within a room, each room under its own epoch', async (t) => {
  const registry = new RoomRegistry()
  const ids = ['a', 'b', 'a', 'c', 'b', 'a'].map((room) => [room, sync(registry.publish(room, 'e', room)).id])
  const of = (room: string) => ids.filter(([r]) => r === room).map(([, id]) => id.split('-'))
  t.same(of('a').map(([, offset]) => Number(offset)), [1, 2, 3], 'offsets count each room\'s events')
  t.same(of('b').map(([, offset]) => Number(offset)), [1, 2])
  t.equal(new Set(of('a').map(([epoch]) => epoch)).size, 1, 'one epoch per room')
  t.not(of('a')[0][0], of('b')[0][0], 'rooms have their own epochs')
  t.match(of('a')[0][0], /^[a-z0-9]{8}$/)
  const other = new RoomRegistry()
  t.not(sync(other.publish('a', 'e', 1)).id.split('-')[0], of('a')[0][0], 'another registry: another epoch')
})

t.test('history returns exactly the events after an id, in order, and says when it recovered them all', async (t) => {
  const registry = new RoomRegistry({ historySize: 3 })
  const ids = [1, 2, 3].map((n) => sync(registry.publish('r', 'e', n)).id)
  registry.publish('other', 'e', 'x')
  const fromFirst = registry.history('r', ids[0]) as { events: RoomEvent[], recovered: boolean }
  t.same(fromFirst.events.map((e) => e.data), [2, 3])
  t.equal(fromFirst.recovered, true)
  const fromLast = registry.history('r', ids[2]) as { events: RoomEvent[], recovered: boolean }
  t.same(fromLast.events, [])
  t.equal(fromLast.recovered, true, 'nothing missed')
  const id4 = sync(registry.publish('r', 'e', 4)).id
  sync(registry.publish('r', 'e', 5))
  const gap = registry.history('r', ids[0]) as { events: RoomEvent[], recovered: boolean }
  t.same(gap.events.map((e) => e.data), [3, 4, 5], 'what is left is still sent')
  t.equal(gap.recovered, false, 'event 2 fell out of history')
  const exact = registry.history('r', ids[2]) as { events: RoomEvent[], recovered: boolean }
  t.same(exact.events.map((e) => e.data), [4, 5])
  t.equal(exact.recovered, true, 'the resume point is exactly at the oldest evicted event')
  t.ok(id4)
})

t.test('an id from another epoch, another room, a malformed id or a future id is reported as a gap', async (t) => {
  const before = new RoomRegistry()
  const oldId = sync(before.publish('r', 'e', 'old')).id
  const registry = new RoomRegistry()
  const fresh = sync(registry.publish('r', 'e', 'new')).id
  const foreign = registry.history('r', oldId) as { events: RoomEvent[], recovered: boolean }
  t.equal(foreign.recovered, false)
  t.same(foreign.events.map((e) => e.data), ['new'], 'everything of the new epoch is newer than the old id')
  const garbage = registry.history('r', 'garbage') as { events: RoomEvent[], recovered: boolean }
  t.same([garbage.recovered, garbage.events.map((e) => e.id)], [false, [fresh]])
  const epoch = fresh.split('-')[0]
  t.same(registry.history('r', `${epoch}-999`), { events: [], recovered: false })
  const otherRoom = sync(registry.publish('s', 'e', 1)).id
  t.equal((registry.history('r', otherRoom) as { recovered: boolean }).recovered, false, 'a position of another room')
  t.same(registry.history('quiet', `${epoch}-1`), { events: [], recovered: false }, 'a room this instance knows nothing of')
})

t.test('forgotten room histories make later resumes report a gap', async (t) => {
  let now = 1_000_000
  const bus = new MemoryBus({ historySize: 10, historyRooms: 2, historyTtlMs: 60_000, now: () => now })
  const registry = new RoomRegistry({ bus })
  const first = sync(registry.publish('a', 'e', 1)).id
  registry.publish('a', 'e', 2)
  registry.publish('b', 'e', 1)
  registry.publish('c', 'e', 1) // forgets a, the least recently published
  t.equal(bus.memory.historyRoomCount, 2)
  t.same(registry.history('a', first), { events: [], recovered: false }, 'a lost its history')
  const again = sync(registry.publish('a', 'e', 3)).id
  t.not(again.split('-')[0], first.split('-')[0], 'a forgotten room starts a new epoch')
  t.equal((registry.history('a', first) as { recovered: boolean }).recovered, false, 'so old ids stay gaps')
  const d = sync(registry.publish('d', 'e', 1)).id
  t.equal((registry.history('d', d) as { recovered: boolean }).recovered, true)
  now += 61_000
  t.same(registry.history('d', d), { events: [], recovered: false }, 'expired by TTL')
  t.equal(bus.memory.historyRoomCount, 0)
})

t.test('a history size of zero keeps nothing and every resume is a gap', async (t) => {
  const registry = new RoomRegistry({ historySize: 0 })
  const id = sync(registry.publish('r', 'e', 1)).id
  registry.publish('r', 'e', 2)
  t.same(registry.history('r', id), { events: [], recovered: false })
})

t.test('direct messages reach one local member and report unknown ones', async (t) => {
  const registry = new RoomRegistry()
  const a = member(registry)
  registry.join('r', a)
  t.equal(registry.direct(a.id, { hello: 1 }), true)
  t.same(a.directs, [{ hello: 1 }])
  t.equal(registry.direct(`${registry.instanceId}.zzz`, 1), false)
  t.equal(registry.direct('otherinstance.1', 1), false, 'no bus route to other instances in memory')
  registry.leaveAll(a)
  t.equal(registry.direct(a.id, 2), false, 'gone after leaving every room')
})

t.test('a closed registry refuses publishes and is not ready', async (t) => {
  const registry = new RoomRegistry()
  t.equal(registry.isReady(), true)
  await registry.close()
  await registry.close()
  t.equal(registry.isReady(), false)
  t.throws(() => registry.publish('r', 'e', 1), { code: 'GW_CLOSED' })
})

t.test('a promise-returning broker makes publish a promise that delivers locally after the append', async (t) => {
  const order: string[] = []
  class AsyncBus extends MemoryBus {
    override append (input: Parameters<MemoryBus['append']>[0]) {
      order.push('append')
      return Promise.resolve(super.append(input))
    }
  }
  const registry = new RoomRegistry({ bus: new AsyncBus({ historySize: 10 }) })
  const m = member(registry)
  m.deliver = () => { order.push('deliver') }
  registry.join('r', m)
  const pending = registry.publish('r', 'e', 1)
  t.ok(pending instanceof Promise)
  t.same(order, ['append'])
  t.match(await pending, { id: /^[a-z0-9]+-1$/, delivered: 1 })
  t.same(order, ['append', 'deliver'])
  t.equal(registry.counters.eventsPublished, 1)
})
