import t from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { Broker, BrokerHandler, Bus, HistoryOptions } from '../lib/rooms/bus.js'
import { eventFromJson } from '../lib/rooms/event.js'
import type { Encoder, HistoryResult, Member, PublishInput, RoomEvent, StreamPosition } from '../lib/rooms/types.js'

// The registry's per-room ordering against a broker the test plays: events arrive from publish answers, from the
// "subscription" (handler.deliver) and from history, in any order and twice; members get each room's events in
// offset order, once.

interface Deferred<T> { promise: Promise<T>, resolve: (value: T) => void, reject: (err: Error) => void }
function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: Error) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const ev = (room: string, epoch: string, offset: number, data: unknown = offset): RoomEvent =>
  eventFromJson({ epoch, offset }, room, 'e', JSON.stringify(data), offset)

class ScriptedBroker implements Broker {
  readonly name = 'scripted'
  readonly echoes = true
  handler!: BrokerHandler
  readonly publishes: Array<{ input: PublishInput, tag?: string, answer: Deferred<RoomEvent> }> = []
  readonly histories: Array<{ room: string, since: string, options?: HistoryOptions, answer: Deferred<HistoryResult> }> = []
  readonly positions: Array<{ room: string, answer: Deferred<StreamPosition> }> = []
  readonly subscribed: string[] = []
  readonly unsubscribed: string[] = []
  positionNow: ((room: string) => StreamPosition) | null = null

  start (handler: BrokerHandler): void { this.handler = handler }
  publish (input: PublishInput, tag?: string): Promise<RoomEvent> {
    const answer = deferred<RoomEvent>()
    this.publishes.push({ input, tag, answer })
    return answer.promise
  }

  history (room: string, since: string, options?: HistoryOptions): Promise<HistoryResult> {
    const answer = deferred<HistoryResult>()
    this.histories.push({ room, since, options, answer })
    return answer.promise
  }

  position (room: string): StreamPosition | Promise<StreamPosition> {
    if (this.positionNow !== null) return this.positionNow(room)
    const answer = deferred<StreamPosition>()
    this.positions.push({ room, answer })
    return answer.promise
  }

  subscribe (room: string): void { this.subscribed.push(room) }
  unsubscribe (room: string): void { this.unsubscribed.push(room) }
  async close (): Promise<void> {}
}

const encoder: Encoder<string> = { name: 't', encode: (e) => e.id }

function setup (gapTimeoutMs = 60_000) {
  const broker = new ScriptedBroker()
  const bus: Bus = { name: 'scripted', broker, failing: () => [], close: async () => {} }
  const registry = new RoomRegistry({ bus, gapTimeoutMs })
  const member = (id = registry.nextMemberId()) => {
    const m: Member<string> & { got: string[] } = { id, user: null, transport: 't', encoder, got: [], deliver (_s, e) { m.got.push(e.id) } }
    return m
  }
  return { broker, registry, member }
}

const tick = async () => { await new Promise((resolve) => setImmediate(resolve)) }

/** A registry with member `m` in room `r`, live from position ep-0. */
async function live (gapTimeoutMs?: number) {
  const scripted = setup(gapTimeoutMs)
  const m = scripted.member()
  scripted.registry.join('r', m)
  scripted.broker.positions[0].answer.resolve({ epoch: 'ep', offset: 0 })
  await tick()
  return { ...scripted, m }
}

/** waits for `predicate`, at most 5 s */
async function until (predicate: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('subscription events are delivered in offset order, once; a hole waits until it is filled live', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  t.same(broker.subscribed, ['r'], 'the first member subscribes the room')
  broker.positions[0].answer.resolve({ epoch: 'ep', offset: 4 })
  await tick()
  for (const offset of [5, 5, 7, 8, 4, 6]) broker.handler.deliver(ev('r', 'ep', offset))
  t.same(m.got, ['ep-5', 'ep-6', 'ep-7', 'ep-8'], '7 and 8 waited for 6; 5 twice and 4 (before the join) dropped')
  broker.handler.deliver(ev('elsewhere', 'x', 1))
  t.same(m.got.length, 4, 'a room without local members is ignored')
  registry.leave('r', m)
  t.same(broker.unsubscribed, ['r'], 'the last member leaving unsubscribes')
})

t.test('events that arrive while the start position is read wait for it; those before it are dropped', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  const position = registry.position('r')
  t.ok(position instanceof Promise, 'the position is not known yet')
  broker.handler.deliver(ev('r', 'ep', 3))
  broker.handler.deliver(ev('r', 'ep', 4))
  t.same(m.got, [])
  broker.positions[0].answer.resolve({ epoch: 'ep', offset: 3 })
  t.same(await position, { epoch: 'ep', offset: 4 }, 'known once started: what has been delivered by then')
  t.same(m.got, ['ep-4'])
})

t.test('a start position that cannot be read makes the first event the start', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  broker.positions[0].answer.reject(new Error('redis down'))
  await tick()
  t.same(registry.position('r'), { epoch: 'x', offset: 0 }, 'an unknown position (a resume from it is a gap)')
  broker.handler.subscribed(['r'])
  t.equal(broker.histories.length, 0, 'nothing to catch up from')
  broker.handler.deliver(ev('r', 'ep', 9))
  broker.handler.deliver(ev('r', 'ep', 10))
  t.same(m.got, ['ep-9', 'ep-10'])
})

t.test('an own publish: answered before its echo, or echoed before its answer, it is delivered once and counted', async (t) => {
  const { broker, registry, member } = setup()
  const [a, b] = [member(), member()]
  registry.join('r', a)
  registry.join('r', b)
  broker.positions[0].answer.resolve({ epoch: 'ep', offset: 0 })
  await tick()
  const first = registry.publish('r', 'e', 1) as Promise<{ id: string, delivered: number }>
  t.match(broker.publishes[0].tag, new RegExp(`^${registry.instanceId}\\.`), 'tagged: it may come back before its answer')
  broker.publishes[0].answer.resolve(ev('r', 'ep', 1))
  t.same(await first, { id: 'ep-1', delivered: 2 })
  broker.handler.deliver(ev('r', 'ep', 1), broker.publishes[0].tag)
  t.same(a.got, ['ep-1'], 'its echo is dropped')

  const second = registry.publish('r', 'e', 2, { except: a.id }) as Promise<{ id: string, delivered: number }>
  broker.handler.deliver(ev('r', 'ep', 2), broker.publishes[1].tag)
  t.same([a.got, b.got], [['ep-1'], ['ep-1', 'ep-2']], 'echoed first: delivered, without the excepted member')
  broker.publishes[1].answer.resolve(ev('r', 'ep', 2))
  t.same(await second, { id: 'ep-2', delivered: 1 }, 'the answer reports what the echo delivered')
})

t.test('an own publish ahead of events not here yet waits for them; the hole is filled from history after the timeout', async (t) => {
  const { broker, registry, m } = await live(30)
  const published = registry.publish('r', 'e', 'mine') as Promise<{ id: string, delivered: number }>
  broker.publishes[0].answer.resolve(ev('r', 'ep', 3, 'mine'))
  await tick()
  t.same(m.got, [], 'offsets 1 and 2 are missing: it waits')
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(broker.histories.length, 1, 'the hole outlived gapTimeoutMs: history is read')
  t.same([broker.histories[0].since, broker.histories[0].options], ['ep-0', { repair: true }])
  broker.histories[0].answer.resolve({ events: [ev('r', 'ep', 1), ev('r', 'ep', 2), ev('r', 'ep', 3, 'mine')], recovered: true, position: { epoch: 'ep', offset: 3 } })
  t.same(await published, { id: 'ep-3', delivered: 1 })
  t.same(m.got, ['ep-1', 'ep-2', 'ep-3'])
  t.equal(registry.holesSkipped, 0)
})

t.test('a hole history cannot fill is skipped and counted; what waited behind it goes out', async (t) => {
  const { broker, registry, m } = await live(10)
  broker.handler.deliver(ev('r', 'ep', 1))
  broker.handler.deliver(ev('r', 'ep', 5))
  await new Promise((resolve) => setTimeout(resolve, 40))
  broker.histories[0].answer.resolve({ events: [ev('r', 'ep', 4), ev('r', 'ep', 5)], recovered: false, position: { epoch: 'ep', offset: 5 } })
  await tick()
  t.same(m.got, ['ep-1', 'ep-4', 'ep-5'], '2 and 3 were trimmed: skipped')
  t.equal(registry.holesSkipped, 1)
  const failed = await live(10)
  const n = failed.m
  failed.broker.handler.deliver(ev('r', 'ep', 2))
  for (let i = 0; i < 4; i++) {
    await until(() => failed.broker.histories.length > i)
    t.same(n.got, [], `history failed ${i} times: still waiting`)
    failed.broker.histories[i].answer.reject(new Error('redis down'))
    await tick()
  }
  t.same(n.got, ['ep-2'], 'history unavailable four times in a row: what waited goes out anyway')
})

t.test('history read before the held events were published settles nothing: read again, the hole is filled', async (t) => {
  const { broker, registry, m } = await live(10)
  broker.handler.deliver(ev('r', 'ep', 1))
  broker.handler.deliver(ev('r', 'ep', 3))
  await until(() => broker.histories.length === 1)
  // its answer trails event 3: Redis was at offset 1 when it ran
  broker.histories[0].answer.resolve({ events: [], recovered: true, position: { epoch: 'ep', offset: 1 } })
  await tick()
  t.same(m.got, ['ep-1'], 'event 2 may still come: 3 keeps waiting')
  await until(() => broker.histories.length === 2)
  t.equal(broker.histories[1].since, 'ep-1', 'read again from the same place')
  broker.histories[1].answer.resolve({ events: [ev('r', 'ep', 2), ev('r', 'ep', 3)], recovered: true, position: { epoch: 'ep', offset: 3 } })
  await tick()
  t.same(m.got, ['ep-1', 'ep-2', 'ep-3'])
  t.equal(registry.holesSkipped, 0)
  broker.handler.deliver(ev('r', 'ep', 5))
  await until(() => broker.histories.length === 3)
  broker.histories[2].answer.resolve({ events: [], recovered: true, position: { epoch: 'ep', offset: 4 } })
  await tick()
  broker.handler.deliver(ev('r', 'ep', 4))
  t.same(m.got.slice(3), ['ep-4', 'ep-5'], 'filled live while it waited to read again')
})

t.test('a subscription in place (again) catches the room up from the last delivered offset', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  broker.handler.subscribed(['r'])
  t.equal(broker.histories.length, 0, 'before the start position: the catch-up waits for it')
  broker.positions[0].answer.resolve({ epoch: 'ep', offset: 2 })
  await tick()
  t.same(broker.histories.map((h) => h.since), ['ep-2'], 'then reads from it')
  broker.handler.subscribed(['r'])
  t.equal(broker.histories.length, 1, 'one catch-up at a time')
  broker.histories[0].answer.resolve({ events: [ev('r', 'ep', 3)], recovered: true, position: { epoch: 'ep', offset: 3 } })
  await tick()
  await tick()
  t.same(broker.histories.map((h) => h.since), ['ep-2', 'ep-3'], 'the one asked meanwhile follows')
  broker.histories[1].answer.resolve({ events: [], recovered: true, position: { epoch: 'ep', offset: 3 } })
  await tick()
  t.same(m.got, ['ep-3'])
  broker.handler.subscribed(['nowhere'])
  t.equal(broker.histories.length, 2, 'a room without local members needs nothing')
})

t.test('a new epoch: live, the old one\'s waiting events go out first; from a catch-up with nothing kept, it goes on from the position', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  broker.positions[0].answer.resolve({ epoch: 'old', offset: 1 })
  await tick()
  broker.handler.deliver(ev('r', 'old', 3))
  broker.handler.deliver(ev('r', 'new', 1))
  t.same(m.got, ['old-3', 'new-1'], 'old-3 waited for old-2; the new epoch ends the wait')
  broker.handler.deliver(ev('r', 'old', 4))
  t.same(m.got.length, 2, 'a late event of the previous epoch is dropped')
  broker.handler.subscribed(['r'])
  broker.histories[0].answer.resolve({ events: [], recovered: false, position: { epoch: 'repaired', offset: 7 } })
  await tick()
  t.same(registry.position('r'), { epoch: 'repaired', offset: 7 }, 'history was lost (a failover): it goes on from there')
  broker.handler.deliver(ev('r', 'repaired', 8))
  t.same(m.got.at(-1), 'repaired-8')
})

t.test('history for a member stops at what was delivered here; later events come live', async (t) => {
  const { broker, registry, member } = setup()
  const m = member()
  registry.join('r', m)
  const reading = registry.history('r', 'ep-1') as Promise<HistoryResult>
  broker.histories[0].answer.resolve({ events: [ev('r', 'ep', 2), ev('r', 'ep', 3), ev('r', 'ep', 4)], recovered: true })
  await tick()
  broker.positions[0].answer.resolve({ epoch: 'ep', offset: 3 })
  const result = await reading
  t.same(result.events.map((e) => e.id), ['ep-2', 'ep-3'], 'waited for the start, then cut at it')
  const other = registry.history('elsewhere', 'ep-1') as Promise<HistoryResult>
  broker.histories[1].answer.resolve({ events: [ev('elsewhere', 'ep', 2)], recovered: true })
  t.equal((await other).events.length, 1, 'a room without local members: as the broker answers')
})

t.test('an own publish still waiting when the room empties, or the registry closes, resolves', async (t) => {
  const { broker, registry, member, m } = await live()
  const waiting = registry.publish('r', 'e', 1) as Promise<{ id: string, delivered: number }>
  broker.publishes[0].answer.resolve(ev('r', 'ep', 2))
  await tick()
  registry.leave('r', m)
  t.same(await waiting, { id: 'ep-2', delivered: 0 }, 'nobody left to deliver to')
  const again = member()
  registry.join('r', again)
  broker.positions[1].answer.resolve({ epoch: 'ep', offset: 2 })
  await tick()
  const pending = registry.publish('r', 'e', 2) as Promise<{ id: string, delivered: number }>
  broker.publishes[1].answer.resolve(ev('r', 'ep', 4))
  await tick()
  const position = registry.position('r')
  await registry.close()
  t.same(await pending, { id: 'ep-4', delivered: 1 }, 'closing settles it')
  t.same(await position, { epoch: 'ep', offset: 2 })
  await t.rejects(async () => { await registry.publish('r', 'e', 3) }, { code: 'GW_CLOSED' })
})

t.test('a failed publish rejects and leaves nothing waiting; a publish with no local member is not tagged', async (t) => {
  const { broker, registry } = await live()
  const failing = registry.publish('r', 'e', 1)
  broker.publishes[0].answer.reject(new Error('down'))
  await t.rejects(async () => { await failing }, { message: 'down' })
  const lonely = registry.publish('empty', 'e', 1) as Promise<{ id: string, delivered: number }>
  t.equal(broker.publishes[1].tag, undefined)
  broker.publishes[1].answer.resolve(ev('empty', 'z', 1))
  t.same(await lonely, { id: 'z-1', delivered: 0 })
  t.equal(registry.counters.eventsPublished, 1, 'the failed one is not counted')
})

t.test('a broker whose position throws: the first event is where delivery starts; a subscription back during a wait reads history at once', async (t) => {
  const { broker, registry, member } = setup()
  broker.positionNow = () => { throw new Error('not connected') }
  const m = member()
  registry.join('r', m)
  t.same(registry.position('r'), { epoch: 'x', offset: 0 }, 'an unknown position')
  broker.positionNow = null
  broker.handler.deliver(ev('r', 'ep', 4))
  broker.handler.deliver(ev('r', 'ep', 6))
  t.same(m.got, ['ep-4'], '6 waits for 5')
  broker.handler.subscribed(['r'])
  t.same(broker.histories.map((h) => h.since), ['ep-4'], 'the subscription came back: history is read now, not after the gap timeout')
  broker.histories[0].answer.resolve({ events: [ev('r', 'ep', 5), ev('r', 'ep', 6)], recovered: true, position: { epoch: 'ep', offset: 6 } })
  await tick()
  t.same(m.got, ['ep-4', 'ep-5', 'ep-6'])
})
