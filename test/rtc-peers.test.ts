import t, { type Test } from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import { createEvent } from '../lib/rooms/event.js'
import type { Bus, BusSink } from '../lib/rooms/bus.js'
import type { MaybePromise, Presence, PublishInput, RoomEvent } from '../lib/rooms/types.js'
import { RtcRooms, controlRoomOf, type RtcPeerHandle } from '../lib/rtc/peers.js'

// RtcRooms against a scripted bus: what another instance would do (answer a newcomer, announce peers, relay signals)
// is played by the test through the bus's sink, and the bus's failures are chosen per test.

const ROOM = 'public:call'
const CONTROL = controlRoomOf(ROOM)

class ScriptedBus implements Bus {
  readonly name = 'scripted'
  sink: BusSink | null = null
  readonly inner = new MemoryBus({ historySize: 10 })
  /** every control event appended, in order */
  readonly appended: PublishInput[] = []
  /** extra rtc peers other instances hold, added to presence */
  remotePeers = 0
  appendFails = false
  presence?: (room: string, local: Presence) => MaybePromise<Presence>
  direct: (to: string, message: unknown) => MaybePromise<boolean> = () => false
  readonly directs: Array<{ to: string, message: any }> = []

  constructor () {
    this.presence = (_room, local) => ({ members: local.members + this.remotePeers, users: local.users })
    const direct = this.direct
    this.direct = (to, message) => {
      this.directs.push({ to, message })
      return direct(to, message)
    }
  }

  attach (sink: BusSink): void { this.sink = sink }
  append (input: PublishInput): MaybePromise<RoomEvent> {
    this.appended.push(input)
    if (this.appendFails) return Promise.reject(new Error('bus down'))
    return this.inner.append(input)
  }

  history (room: string, since: string) { return this.inner.history(room, since) }
  isReady (): boolean { return true }
  async close (): Promise<void> {}

  /** A control event from another instance. */
  remote (event: string, data: unknown): void {
    this.sink?.deliver(createEvent(`x-${Math.random()}`, 0, { room: CONTROL, event, data }, Date.now()))
  }

  /** A direct message from another instance to a local member. */
  deliverDirect (to: string, message: unknown): boolean {
    return this.sink?.direct(to, message) ?? false
  }

  /** The control member id the local peer announced with its join. */
  controlOf (peer: string): string {
    const input = this.appended.find((i) => i.event === 'peer-joined' && (i.data as any).peer === peer)
    return (input?.data as any).control
  }
}

function handle (id: string): RtcPeerHandle & { sent: any[], open: boolean } {
  return { id, open: true, sent: [], send (frame: object) { this.sent.push(frame); return true } }
}

function setup (t: Test, options: { capacity?: number, discoveryTimeoutMs?: number } = {}) {
  const bus = new ScriptedBus()
  const registry = new RoomRegistry({ bus })
  t.after(() => registry.close())
  const logs: Array<{ level: string, msg: string }> = []
  const log = {
    debug: (_obj: object, msg: string) => { logs.push({ level: 'debug', msg }) },
    warn: (_obj: object, msg: string) => { logs.push({ level: 'warn', msg }) }
  }
  const rooms = new RtcRooms({ registry, capacity: options.capacity ?? 8, discoveryTimeoutMs: options.discoveryTimeoutMs ?? 5000, log })
  return { bus, registry, rooms, logs }
}

/** Enters and activates, as the route does after sending `joined`. */
async function join (rooms: RtcRooms, peer: RtcPeerHandle, room = ROOM) {
  const result = await rooms.enter(peer, room)
  if (result.ok) rooms.activate(peer.id, room)
  return result
}

t.test('a newcomer waits for the peers other instances hold, and lists them in joined', async (t) => {
  const { bus, rooms } = setup(t)
  bus.remotePeers = 1
  const a = handle('here.1')
  const entering = rooms.enter(a, ROOM)
  // the other instance heard the join and answers the newcomer's control member directly
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(bus.deliverDirect(bus.controlOf(a.id), { rtc: 'present', room: ROOM, peer: 'far.1', control: 'far.c1' }))
  t.same(await entering, { ok: true, peers: ['far.1'] })
  t.equal(rooms.count(ROOM), 2)
})

t.test('signals that arrive while joining are held and sent after joined, at most 256', async (t) => {
  const { bus, rooms, logs } = setup(t)
  bus.remotePeers = 1
  const a = handle('here.1')
  const entering = rooms.enter(a, ROOM)
  await new Promise((resolve) => setImmediate(resolve))
  const control = bus.controlOf(a.id)
  for (let i = 0; i < 300; i++) bus.deliverDirect(control, { rtc: 'signal', room: ROOM, from: 'far.1', data: { candidate: String(i) } })
  bus.deliverDirect(control, { rtc: 'present', room: ROOM, peer: 'far.1', control: 'far.c1' })
  await entering
  t.same(a.sent, [], 'nothing before joined')
  rooms.activate(a.id, ROOM)
  t.equal(a.sent.length, 256)
  t.same(a.sent[0], { op: 'signal', room: ROOM, from: 'far.1', data: { candidate: '0' } })
  t.ok(logs.some((l) => l.msg.includes('too many signals before joined')))
})

t.test('discovery gives up after discoveryTimeoutMs; a late answer becomes a peer-joined', async (t) => {
  const { bus, rooms, logs } = setup(t, { discoveryTimeoutMs: 30 })
  bus.remotePeers = 1
  const a = handle('here.1')
  t.same(await join(rooms, a), { ok: true, peers: [] })
  t.ok(logs.some((l) => l.msg.includes('not every peer answered in time')))
  bus.deliverDirect(bus.controlOf(a.id), { rtc: 'present', room: ROOM, peer: 'far.1', control: 'far.c1' })
  t.same(a.sent, [{ op: 'peer-joined', room: ROOM, peer: 'far.1' }])
  bus.deliverDirect(bus.controlOf(a.id), { rtc: 'present', room: ROOM, peer: 'far.1', control: 'far.c1' })
  t.equal(a.sent.length, 1, 'a repeated answer is not a second notice')
})

t.test('control events of other instances: notices to local peers, answers to the newcomer, directory kept', async (t) => {
  const { bus, rooms } = setup(t)
  const a = handle('here.1')
  await join(rooms, a)
  bus.direct = (to, message) => { bus.directs.push({ to, message }); return Promise.resolve(true) }
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  t.same(a.sent, [{ op: 'peer-joined', room: ROOM, peer: 'far.2' }])
  t.same(bus.directs.at(-1), { to: 'far.c2', message: { rtc: 'present', room: ROOM, peer: a.id, control: bus.controlOf(a.id) } })
  t.same(rooms.peersOf(ROOM, a.id), ['far.2'])
  bus.remote('peer-left', { room: ROOM, peer: 'far.2' })
  t.same(a.sent.at(-1), { op: 'peer-left', room: ROOM, peer: 'far.2' })
  t.same(rooms.peersOf(ROOM, a.id), [])
})

t.test('malformed control events and direct messages are ignored', async (t) => {
  const { bus, rooms } = setup(t)
  const a = handle('here.1')
  await join(rooms, a)
  const control = bus.controlOf(a.id)
  for (const data of [null, 'x', { room: 'public:other', peer: 'far.2', control: 'c' }, { room: ROOM }, { room: ROOM, peer: 'far.2' }, { room: ROOM, peer: a.id, control: 'c' }]) {
    bus.remote('peer-joined', data)
  }
  bus.remote('something-else', { room: ROOM, peer: 'far.3', control: 'c' })
  for (const message of [null, 'x', { rtc: 'signal', room: 'public:other', from: 'far.1' }, { rtc: 'signal', room: ROOM }, { rtc: 'present', room: ROOM, peer: 'far.1' },
    { rtc: 'present', room: ROOM, peer: a.id, control: 'c' }, { rtc: 'unknown', room: ROOM }]) {
    bus.deliverDirect(control, message)
  }
  t.same(a.sent, [])
  t.equal(rooms.count(ROOM), 1)
})

t.test('a signal to a peer on another instance goes through the bus: delivered, gone, or failing', async (t) => {
  const { bus, rooms, logs } = setup(t)
  const a = handle('here.1')
  await join(rooms, a)
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.direct = (to, message) => { bus.directs.push({ to, message }); return Promise.resolve(true) }
  t.equal(await rooms.signal(a.id, ROOM, 'far.2', { candidate: '' }), 'sent')
  t.same(bus.directs.at(-1), { to: 'far.c2', message: { rtc: 'signal', room: ROOM, from: a.id, data: { candidate: '' } } })
  bus.direct = () => Promise.reject(new Error('redis down'))
  t.equal(await rooms.signal(a.id, ROOM, 'far.2', {}), 'not-found')
  t.ok(logs.some((l) => l.msg === 'rtc: signal relay failed'))
  bus.direct = () => { throw new Error('sync failure') }
  t.equal(rooms.signal(a.id, ROOM, 'far.2', {}), 'not-found')
  bus.direct = () => Promise.resolve(false)
  t.equal(await rooms.signal(a.id, ROOM, 'far.2', {}), 'not-found')
  t.same(rooms.peersOf(ROOM, a.id), [], 'a peer no instance has is forgotten')
  t.equal(rooms.signal(a.id, ROOM, 'far.2', {}), 'not-found')
})

t.test('answers to newcomers that fail are logged, not thrown', async (t) => {
  const { bus, rooms, logs } = setup(t)
  const a = handle('here.1')
  await join(rooms, a)
  bus.direct = () => Promise.reject(new Error('redis down'))
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.direct = () => { throw new Error('sync failure') }
  bus.remote('peer-joined', { room: ROOM, peer: 'far.3', control: 'far.c3' })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(logs.filter((l) => l.msg === 'rtc: presence answer failed').length, 2)
  t.equal(a.sent.length, 2, 'the local peer was told all the same')
})

t.test('presence or publish failing makes the join UNAVAILABLE and leaves nothing behind', async (t) => {
  const { bus, registry, rooms } = setup(t)
  bus.presence = () => Promise.reject(new Error('redis down'))
  t.match(await rooms.enter(handle('here.1'), ROOM), { ok: false, code: 'UNAVAILABLE' })
  bus.presence = undefined
  bus.appendFails = true
  t.match(await rooms.enter(handle('here.2'), ROOM), { ok: false, code: 'UNAVAILABLE' })
  t.equal(registry.size(CONTROL), 0)
  t.equal(rooms.count(ROOM), 0)
  t.same(rooms.roomsOf('here.2'), [])
})

t.test('presence failing only for discovery does not fail the join: the peers known so far are listed', async (t) => {
  const { bus, rooms } = setup(t)
  let calls = 0
  bus.presence = (_room, local) => ++calls === 1 ? local : Promise.reject(new Error('redis down'))
  t.same(await join(rooms, handle('here.1')), { ok: true, peers: [] })
  t.equal(calls, 2)
})

t.test('a connection that ends while joining gets nothing and leaves nothing behind', async (t) => {
  const { bus, registry, rooms } = setup(t)
  // ends while the capacity check waits for presence
  const a = handle('here.1')
  const presence = bus.presence
  bus.presence = (_room, local) => new Promise((resolve) => { a.open = false; setImmediate(() => { resolve(local) }) })
  t.same(await rooms.enter(a, ROOM), { ok: false, code: 'GONE' })
  t.equal(registry.size(CONTROL), 0)
  // ends while its join is being announced
  bus.presence = presence
  const b = handle('here.2')
  const originalAppend = bus.append.bind(bus)
  bus.append = (input) => { const ev = originalAppend(input); rooms.leaveAll(b.id); return Promise.resolve(ev) }
  t.same(await rooms.enter(b, ROOM), { ok: false, code: 'GONE' })
  bus.append = originalAppend
  // ends while it waits for the peers of other instances
  bus.remotePeers = 1
  const c = handle('here.3')
  const entering = rooms.enter(c, ROOM)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(rooms.leaveAll(c.id), [ROOM])
  t.same(await entering, { ok: false, code: 'GONE' })
  t.equal(registry.size(CONTROL), 0)
  t.equal(rooms.count(ROOM), 0)
  t.same(rooms.leaveAll(c.id), [], 'nothing left to leave')
  t.notOk(rooms.leave(c.id, ROOM))
  rooms.activate(c.id, ROOM)
})

t.test('a peer-left that cannot be published is logged (closed registry: debug, bus failure: warn)', async (t) => {
  const { bus, registry, rooms, logs } = setup(t)
  const a = handle('here.1')
  const b = handle('here.2')
  await join(rooms, a)
  await join(rooms, b)
  bus.appendFails = true
  t.ok(rooms.leave(a.id, ROOM))
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(logs.some((l) => l.level === 'warn' && l.msg === 'rtc: peer-left could not be announced'))
  await registry.close()
  t.ok(rooms.leave(b.id, ROOM))
  t.ok(logs.some((l) => l.level === 'debug' && l.msg === 'rtc: peer-left could not be announced'))
})

t.test('capacity counts peers of other instances too', async (t) => {
  const { bus, rooms } = setup(t, { capacity: 2 })
  bus.remotePeers = 2
  t.match(await rooms.enter(handle('here.1'), ROOM), { ok: false, code: 'ROOM_FULL', message: /full \(2 peers\)/ })
  bus.remotePeers = 0
  await join(rooms, handle('here.1'))
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  t.match(await rooms.enter(handle('here.3'), ROOM), { ok: false, code: 'ROOM_FULL' }, 'the directory alone says full')
})

t.test('controlRoomOf is a valid, fixed-length room name for any room, 128 characters included', async (t) => {
  const long = 'a'.repeat(128)
  t.match(controlRoomOf(long), /^rtc@[A-Za-z0-9_-]{43}$/)
  t.not(controlRoomOf('a'), controlRoomOf('b'))
  const registry = new RoomRegistry()
  t.after(() => registry.close())
  t.doesNotThrow(() => registry.join(controlRoomOf(long), { id: 'x.1', user: null, transport: 't', encoder: { name: 'n', encode: () => null }, deliver: () => {} }))
})
