import t, { type Test } from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import type { Bus, BrokerHandler, ControlHandler, NodeControl } from '../lib/rooms/bus.js'
import type { MaybePromise, Presence, PublishInput, RoomEvent } from '../lib/rooms/types.js'
import { RtcRooms, controlRoomOf, type RtcPeerHandle } from '../lib/rtc/peers.js'
import type { Frame } from './helpers/ws-client.js'

// RtcRooms against a scripted bus: what another instance would do (answer a newcomer, announce peers, relay signals)
// is played by the test through the bus's sink, and the bus's failures are chosen per test.

const ROOM = 'public:call'
const CONTROL = controlRoomOf(ROOM)

class ScriptedBus {
  readonly name = 'scripted'
  brokerHandler: BrokerHandler | null = null
  controlHandler: ControlHandler | null = null
  readonly inner = new MemoryBus({ historySize: 10 })
  /** every control event appended, in order */
  readonly appended: PublishInput[] = []
  /** extra rtc peers other instances hold, added to presence */
  remotePeers = 0
  appendFails = false
  presence?: (room: string, local: Presence) => MaybePromise<Presence>
  direct: (to: string, message: unknown) => MaybePromise<boolean> = () => false
  /** set by a test to play a bus that tracks instances */
  liveInstances?: () => MaybePromise<ReadonlySet<string> | null>
  instanceTtlMs?: number
  readonly directs: Array<{ to: string, message: unknown }> = []
  /** the seams the registry runs on, each going through the scripted fields above */
  readonly adapter: Bus

  constructor () {
    this.presence = (_room, local) => ({ members: local.members + this.remotePeers, users: local.users })
    const direct = this.direct
    this.direct = (to, message) => {
      this.directs.push({ to, message })
      return direct(to, message)
    }
    const inner = this.inner.broker
    const control = {
      start: (handler: ControlHandler) => { this.controlHandler = handler },
      direct: (to: string, message: unknown) => this.direct(to, message),
      liveInstances: () => this.liveInstances?.() ?? null
    } as unknown as NodeControl
    // it tracks instances (has a TTL) only once a test sets `liveInstances`
    Object.defineProperty(control, 'instanceTtlMs', { get: () => this.liveInstances === undefined ? undefined : this.instanceTtlMs })
    this.adapter = {
      name: 'scripted',
      broker: {
        ...inner,
        start: (handler) => { this.brokerHandler = handler },
        publish: (input) => this.append(input),
        history: (room, since) => this.history(room, since)
      },
      presence: {
        add: () => {},
        remove: () => {},
        presence: (room, local) => this.presence?.(room, local) ?? local,
        list: (local) => local
      },
      control,
      failing: () => [],
      close: async () => {}
    }
  }

  append (input: PublishInput): MaybePromise<RoomEvent> {
    this.appended.push(input)
    if (this.appendFails) return Promise.reject(new Error('bus down'))
    return this.inner.append(input)
  }

  history (room: string, since: string) { return this.inner.history(room, since) }

  /** A control event from another instance: the next event of the control room, handed over as a subscription would. */
  remote (event: string, data: unknown): void {
    const published = this.inner.append({ room: CONTROL, event, data }) as RoomEvent
    this.brokerHandler?.deliver(published)
  }

  /** A direct message from another instance to a local member. */
  deliverDirect (to: string, message: unknown): boolean {
    return this.controlHandler?.direct(to, message) ?? false
  }

  /** The control member id the local peer announced with its join. */
  controlOf (peer: string): string {
    const input = this.appended.find((i) => i.event === 'peer-joined' && (i.data as { peer?: string }).peer === peer)
    return (input?.data as { control: string }).control
  }
}

function handle (id: string): RtcPeerHandle & { sent: Frame[], open: boolean } {
  return { id, open: true, sent: [], send (frame: object) { this.sent.push(frame); return true } }
}

interface SetupOptions {
  capacity?: number
  discoveryTimeoutMs?: number
  livenessCheckMs?: number
  /** prepares the bus before the registry and RtcRooms exist */
  configure?: (bus: ScriptedBus) => void
}

function setup (t: Test, options: SetupOptions = {}) {
  const bus = new ScriptedBus()
  options.configure?.(bus)
  const registry = new RoomRegistry({ bus: bus.adapter })
  t.after(() => registry.close())
  const logs: Array<{ level: string, msg: string }> = []
  const log = {
    debug: (_obj: object, msg: string) => { logs.push({ level: 'debug', msg }) },
    warn: (_obj: object, msg: string) => { logs.push({ level: 'warn', msg }) }
  }
  const rooms = new RtcRooms({
    registry,
    capacity: options.capacity ?? 8,
    discoveryTimeoutMs: options.discoveryTimeoutMs ?? 5000,
    ...(options.livenessCheckMs === undefined ? {} : { livenessCheckMs: options.livenessCheckMs }),
    log
  })
  t.after(() => { rooms.close() })
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

/** Resolves once `check()` holds, re-checked every few ms; rejects after `timeoutMs`. */
async function until (check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const leftOf = (h: { sent: Frame[] }, peer: string) => h.sent.filter((f) => f.op === 'peer-left' && f.peer === peer).length

t.test('peers of a crashed instance get one peer-left each, and a newcomer\'s joined leaves them out', async (t) => {
  let live = new Set<string>()
  const { bus, registry, rooms, logs } = setup(t, { livenessCheckMs: 0, configure: (b) => { b.liveInstances = () => live } })
  live = new Set([registry.instanceId, 'near'])
  const a = handle(`${registry.instanceId}.a`)
  await join(rooms, a)
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.remote('peer-joined', { room: ROOM, peer: 'near.3', control: 'near.c3' })
  t.equal(await rooms.dropCrashed(), 1, 'the peer of the instance no longer alive is dropped')
  t.same(a.sent.at(-1), { op: 'peer-left', room: ROOM, peer: 'far.2' })
  t.same(rooms.peersOf(ROOM, a.id), ['near.3'])
  t.ok(logs.some((l) => l.level === 'warn' && l.msg === 'rtc: peers of instances without heartbeat dropped'))
  t.equal(await rooms.dropCrashed(), 0, 'a second check finds nothing more')
  bus.remote('peer-left', { room: ROOM, peer: 'far.2' })
  t.equal(leftOf(a, 'far.2'), 1, 'its own peer-left still in flight is not told twice')

  // the crash is noticed by the newcomer's join, before the timer
  bus.remote('peer-joined', { room: ROOM, peer: 'gone.4', control: 'gone.c4' })
  const b = handle(`${registry.instanceId}.b`)
  t.same(await join(rooms, b), { ok: true, peers: [a.id, 'near.3'] }, 'joined lists no peer of a crashed instance')
  t.equal(leftOf(a, 'gone.4'), 1, 'and the peers already there hear it left')
  t.equal(leftOf(b, 'gone.4'), 0)

  // an instance taken for crashed that comes back: its peers are announced again and can leave again
  live.add('far')
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.remote('peer-left', { room: ROOM, peer: 'far.2' })
  t.same([leftOf(a, 'far.2'), leftOf(b, 'far.2')], [2, 1])
})

t.test('while the bus cannot tell which instances are alive, no peer is dropped', async (t) => {
  let answer: () => MaybePromise<ReadonlySet<string> | null> = () => null
  const { bus, rooms, logs } = setup(t, { livenessCheckMs: 0, configure: (b) => { b.liveInstances = () => answer() } })
  const a = handle('here.a')
  await join(rooms, a)
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  t.equal(await rooms.dropCrashed(), 0, 'unknown (just reconnected)')
  answer = () => Promise.reject(new Error('redis down'))
  t.equal(await rooms.dropCrashed(), 0, 'failing')
  t.ok(logs.some((l) => l.msg === 'rtc: live instances unknown'))
  answer = () => { throw new Error('sync failure') }
  t.equal(await rooms.dropCrashed(), 0, 'throwing')
  t.same(await join(rooms, handle('here.b')), { ok: true, peers: [a.id, 'far.2'] }, 'a newcomer is told of every peer known')
  t.equal(leftOf(a, 'far.2'), 0)
})

t.test('a peer announced while the liveness question is out is not judged by its answer', async (t) => {
  let answer: (live: ReadonlySet<string>) => void = () => {}
  let asked = 0
  const { bus, registry, rooms } = setup(t, {
    livenessCheckMs: 0,
    configure: (b) => { b.liveInstances = () => { asked++; return new Promise((resolve) => { answer = resolve }) } }
  })
  const a = handle('here.a')
  await join(rooms, a)
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.remote('peer-joined', { room: ROOM, peer: 'far.3', control: 'far.c3' })
  const checking = rooms.dropCrashed()
  t.equal(await rooms.dropCrashed(), 0, 'one check at a time')
  t.equal(asked, 1)
  bus.remote('peer-joined', { room: ROOM, peer: 'late.5', control: 'late.c5' })
  bus.remote('peer-left', { room: ROOM, peer: 'far.3' })
  answer(new Set([registry.instanceId]))
  t.equal(await checking, 1, 'only far.2: far.3 left meanwhile')
  t.same([leftOf(a, 'far.2'), leftOf(a, 'far.3')], [1, 1])
  t.same(rooms.peersOf(ROOM, a.id), ['late.5'], 'the newcomer of an instance listed after the question stays')
})

t.test('a join waits for the bus to tell which instances are alive; a connection that ends meanwhile gets nothing', async (t) => {
  const answers: Array<(live: ReadonlySet<string>) => void> = []
  const { bus, registry, rooms } = setup(t, {
    livenessCheckMs: 0,
    configure: (b) => { b.liveInstances = () => new Promise((resolve) => { answers.push(resolve) }) }
  })
  const a = handle('here.a')
  await join(rooms, a)
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  bus.remote('peer-joined', { room: ROOM, peer: 'odd.3', control: 'odd' })
  const b = handle('here.b')
  const entering = join(rooms, b)
  await until(() => answers.length === 1, 'the question')
  answers[0](new Set([registry.instanceId, 'far']))
  t.same(await entering, { ok: true, peers: [a.id, 'far.2'] }, 'a control id without a dot is an instance name of its own')
  t.equal(leftOf(a, 'odd.3'), 1)

  const c = handle('here.c')
  const leaving = rooms.enter(c, ROOM)
  await until(() => answers.length === 2, 'the second question')
  rooms.leaveAll(c.id)
  answers[1](new Set([registry.instanceId, 'far']))
  t.same(await leaving, { ok: false, code: 'GONE' })
})

t.test('the memory of peers dropped for a crashed instance is bounded (1024 per room)', async (t) => {
  const { bus, registry, rooms } = setup(t, { livenessCheckMs: 0, configure: (b) => { b.liveInstances = () => new Set([registry.instanceId]) } })
  const a = handle('here.a')
  await join(rooms, a)
  for (let i = 0; i < 1030; i++) bus.remote('peer-joined', { room: ROOM, peer: `far.${i}`, control: `far.c${i}` })
  t.equal(await rooms.dropCrashed(), 1030)
  bus.remote('peer-left', { room: ROOM, peer: 'far.1029' })
  t.equal(leftOf(a, 'far.1029'), 1, 'a recent one is remembered')
  bus.remote('peer-left', { room: ROOM, peer: 'far.0' })
  t.equal(leftOf(a, 'far.0'), 2, 'the oldest is forgotten: a late peer-left of it is passed on')
})

t.test('the liveness check runs every third of the bus\'s instance expiry until close; never with one instance', async (t) => {
  let asked = 0
  const { bus, registry, rooms } = setup(t, {
    configure: (b) => {
      b.instanceTtlMs = 60
      b.liveInstances = () => { asked++; return new Set([registry.instanceId]) }
    }
  })
  t.equal(registry.instanceTtlMs, 60)
  const a = handle('here.a')
  await join(rooms, a)
  t.equal(await rooms.dropCrashed(), 0)
  t.equal(asked, 0, 'nothing to ask about while no remote peer is known')
  bus.remote('peer-joined', { room: ROOM, peer: 'far.2', control: 'far.c2' })
  await until(() => leftOf(a, 'far.2') === 1, 'the timer to drop the peer of the crashed instance')
  rooms.close()
  bus.remote('peer-joined', { room: ROOM, peer: 'far.3', control: 'far.c3' })
  const before = asked
  t.equal(await rooms.dropCrashed(), 0, 'closed: nothing checked')
  t.equal(asked, before)

  const single = new RoomRegistry()
  t.after(() => single.close())
  t.equal(single.liveInstances(), null, 'the in-memory bus: no other instance to crash')
  t.equal(single.instanceTtlMs, null)
})
