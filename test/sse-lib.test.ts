import t from 'tap'
import { EventEmitter } from 'node:events'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import { createEvent } from '../lib/rooms/event.js'
import { formatId } from '../lib/rooms/ids.js'
import type { HistoryResult, PublishResult, RoomEvent } from '../lib/rooms/types.js'
import { encodeGap, encodeRetry, encodeSseEvent, PING, sseEncoder } from '../lib/sse/encoder.js'
import { SseWriter } from '../lib/sse/writer.js'
import { planReplay } from '../lib/sse/replay.js'
import { SseStream, type SseCloseReason, type SseRegistry } from '../lib/sse/stream.js'
import { SseHub } from '../lib/sse/hub.js'

/** A writable stand-in: records writes, answers `write()` with `accept`, emits `drain` on demand. */
class FakeTarget extends EventEmitter {
  writes: Buffer[] = []
  accept = true
  write (chunk: Buffer): boolean {
    this.writes.push(chunk)
    return this.accept
  }

  text (): string {
    return Buffer.concat(this.writes).toString()
  }
}

/** An event of `room` at `offset` of `epoch`; its time orders rooms in a replay (default: the offset). */
function event (epoch: string, offset: number, room: string, data: unknown = offset, time = offset): RoomEvent {
  return createEvent({ epoch, offset }, { room, event: 'e', data }, time)
}

function streamOn (registry: SseRegistry, rooms: string[], options: { sendBufferBytes?: number } = {}) {
  const target = new FakeTarget()
  const ends: Array<'end' | 'destroy'> = []
  const closes: Array<{ reason: SseCloseReason, err?: unknown }> = []
  const stream = new SseStream({
    id: `m${Math.random()}`,
    user: null,
    rooms,
    registry,
    target,
    sendBufferBytes: options.sendBufferBytes ?? 1 << 20,
    retryMs: 100,
    end: (how) => { ends.push(how) },
    onClose: (reason, err) => { closes.push({ reason, err }) }
  })
  return { stream, target, ends, closes }
}

t.test('the encoder frames an event as id, event and data lines with a blank line after', async (t) => {
  const ev = event('ep', 7, 'public:a', { text: 'a\nb', n: 1 })
  t.equal(encodeSseEvent(ev).toString(), 'id: ep-7\nevent: e\ndata: {"room":"public:a","data":{"text":"a\\nb","n":1}}\n\n')
  t.equal(encodeGap('public:a').toString(), 'event: gap\ndata: {"room":"public:a"}\n\n')
  t.equal(encodeRetry(250.7).toString(), 'retry: 250\n\n')
  t.equal(PING.toString(), ': ping\n\n')
  t.equal(sseEncoder.name, 'sse')
})

t.test('one publish is encoded once and the same buffer is written to every stream', async (t) => {
  const registry = new RoomRegistry()
  const streams = [streamOn(registry, ['public:a']), streamOn(registry, ['public:a']), streamOn(registry, ['public:a', 'public:b'])]
  for (const s of streams) s.stream.open(null)
  const { id } = registry.publish('public:a', 'note', { x: 1 }) as PublishResult
  const written = streams.slice(0, 2).map((s) => s.target.writes[1])
  t.ok(written.every((b) => b === written[0]), 'the identical Buffer object, not copies')
  t.equal(written[0].toString(), `id: ${id}\nevent: note\ndata: {"room":"public:a","data":{"x":1}}\n\n`)
  // a stream of several rooms writes its own id line (every room's position), then a view of the same bytes
  const [idLine, body] = streams[2].target.writes.slice(1)
  t.match(idLine.toString(), new RegExp(`^id: ${id}~[a-z0-9]+-0\n$`))
  t.ok(body.buffer === written[0].buffer && body.byteOffset === written[0].byteOffset + 5 + id.length, 'the rest is the shared encoding, not a copy')
  t.equal(body.toString(), 'event: note\ndata: {"room":"public:a","data":{"x":1}}\n\n')
})

t.test('the writer stops writing when write() returns false and sends the queue in one write on drain', async (t) => {
  const target = new FakeTarget()
  let overflows = 0
  const writer = new SseWriter(target, 100, () => { overflows++ })
  target.accept = false
  t.ok(writer.write(Buffer.from('one')))
  t.ok(writer.blocked)
  t.ok(writer.write(Buffer.from('two')))
  t.ok(writer.write(Buffer.from('three')))
  t.equal(target.writes.length, 1, 'nothing written while blocked')
  t.equal(writer.queued, 8)
  target.accept = true
  target.emit('drain')
  t.same(target.writes.map(String), ['one', 'twothree'])
  t.notOk(writer.blocked)
  t.equal(writer.queued, 0)
  target.emit('drain')
  t.equal(target.writes.length, 2, 'a drain with nothing queued writes nothing')
  t.equal(overflows, 0)
})

t.test('the writer ends once past its bound and leaves no drain listener behind', async (t) => {
  const target = new FakeTarget()
  let overflows = 0
  const writer = new SseWriter(target, 10, () => { overflows++ })
  target.accept = false
  writer.write(Buffer.from('first'))
  t.equal(target.listenerCount('drain'), 1)
  t.ok(writer.write(Buffer.alloc(10)), 'at the bound: still queued')
  t.notOk(writer.write(Buffer.alloc(1)), 'past it: refused')
  t.equal(overflows, 1)
  t.equal(target.listenerCount('drain'), 0)
  t.notOk(writer.write(Buffer.alloc(1)), 'closed for good')
  t.equal(overflows, 1, 'overflow is reported once')
  const unbounded = new SseWriter(target, 10, () => { overflows++ })
  unbounded.write(Buffer.from('x'))
  t.ok(unbounded.write(Buffer.alloc(100), true), 'an unbounded write (a replay) may exceed the bound')
  t.equal(overflows, 1)
  unbounded.close()
  unbounded.close()
  t.equal(target.listenerCount('drain'), 0)
})

t.test('the writer keeps waiting when the flush after drain blocks again', async (t) => {
  const target = new FakeTarget()
  const writer = new SseWriter(target, 1000, () => {})
  target.accept = false
  writer.write(Buffer.from('a'))
  writer.write(Buffer.from('b'))
  target.emit('drain')
  t.ok(writer.blocked)
  writer.write(Buffer.from('c'))
  target.accept = true
  target.emit('drain')
  t.same(target.writes.map(String), ['a', 'b', 'c'])
  writer.close()
  target.emit('drain')
  t.equal(target.writes.length, 3)
})

t.test('the replay plan keeps each room in order, interleaves rooms by time, drops duplicates and what the client has, and lists gaps', async (t) => {
  const a2 = event('ea', 2, 'a', 'a2', 10)
  const a5 = event('ea', 5, 'a', 'a5', 40)
  const b3 = event('eb', 3, 'b', 'b3', 20)
  const b4 = event('eb', 4, 'b', 'b4', 50)
  const histories: HistoryResult[] = [{ events: [a2, a5], recovered: false }, { events: [b3], recovered: true }]
  const plan = planReplay(['a', 'b'], histories, [b4, a5, event('ea', 1, 'a')], [formatId('ea', 1), formatId('eb', 2)])
  t.same(plan.gaps, ['a'])
  t.same(plan.events.map((e) => e.id), ['ea-2', 'eb-3', 'ea-5', 'eb-4'])
  t.same(plan.starts, ['ea-1', 'eb-2'], 'a gap room starts just before its first replayed event; a recovered one at its resume point')
  const other = planReplay(['a'], [{ events: [event('new', 1, 'a')], recovered: false }], [], [formatId('ea', 9)])
  t.same(other.events.map((e) => e.id), ['new-1'], 'an id of another epoch does not hide events')
  t.same(other.starts, ['new-0'])
  const fresh = planReplay(['a', 'b'], [], [event('ea', 4, 'a'), event('eb', 9, 'b', 0, 4)], [null, null])
  t.same(fresh.events.map((e) => e.id), ['ea-4', 'eb-9'], 'equal times: the stream\'s room order')
  t.same(fresh.starts, ['ea-3', 'eb-8'])
  const none = planReplay(['a'], [{ events: [], recovered: false }], [], [null])
  t.same([none.gaps, none.starts], [['a'], [null]], 'a gap with nothing kept: no position to say')
})

t.test('a stream holds live events back until its replay is written, then writes each once in order', async (t) => {
  const bus = new MemoryBus({ historySize: 10 })
  let answer!: () => void
  const registry = new RoomRegistry({ bus })
  const gated: SseRegistry = {
    join: (room, member) => registry.join(room, member),
    leaveAll: (member) => registry.leaveAll(member),
    history: (room, since) => new Promise((resolve) => { answer = () => { resolve(registry.history(room, since)) } }),
    position: (room) => registry.position(room)
  }
  const since = (registry.publish('a', 'e', 0) as PublishResult).id
  const { stream, target } = streamOn(gated, ['a'])
  const opened = stream.open(since)
  t.notOk(stream.live)
  const ids = [(registry.publish('a', 'e', 1) as PublishResult).id]
  answer()
  ids.push((registry.publish('a', 'e', 2) as PublishResult).id)
  await opened
  t.ok(stream.live)
  ids.push((registry.publish('a', 'e', 3) as PublishResult).id)
  t.same([...target.text().matchAll(/^id: (.+)$/gm)].map((m) => m[1]), ids)
})

t.test('a live stream never writes an id at or below the last one it wrote (same epoch)', async (t) => {
  const registry = new RoomRegistry()
  const { stream, target } = streamOn(registry, ['a'])
  stream.open(null)
  const e5 = event('ep', 5, 'a')
  stream.deliver(encodeSseEvent(e5), e5)
  stream.deliver(encodeSseEvent(e5), e5)
  const e4 = event('ep', 4, 'a')
  stream.deliver(encodeSseEvent(e4), e4)
  const restarted = event('ep2', 1, 'a')
  stream.deliver(encodeSseEvent(restarted), restarted)
  t.same([...target.text().matchAll(/^id: (.+)$/gm)].map((m) => m[1]), ['ep-5', 'ep2-1'], 'a new epoch (bus restart) goes through')
})

t.test('a stream whose held-back events pass the bound while it opens is ended', async (t) => {
  const registry = new RoomRegistry()
  const pendingRegistry: SseRegistry = {
    join: (room, member) => registry.join(room, member),
    leaveAll: (member) => registry.leaveAll(member),
    history: () => new Promise(() => {}),
    position: (room) => registry.position(room)
  }
  const { stream, ends, closes } = streamOn(pendingRegistry, ['a'], { sendBufferBytes: 1024 })
  void stream.open('ep-1')
  for (let i = 0; i < 10 && !stream.closed; i++) registry.publish('a', 'e', 'x'.repeat(200))
  t.ok(stream.closed)
  t.same(ends, ['destroy'])
  t.same(closes.map((c) => c.reason), ['overflow'])
  t.equal(registry.size('a'), 0)
})

t.test('a history that throws synchronously ends the stream with reason error', async (t) => {
  const registry = new RoomRegistry()
  const broken: SseRegistry = {
    join: (room, member) => registry.join(room, member),
    leaveAll: (member) => registry.leaveAll(member),
    history: () => { throw new Error('no history') },
    position: (room) => registry.position(room)
  }
  const { stream, ends, closes } = streamOn(broken, ['a'])
  await stream.open('ep-1')
  t.same(ends, ['destroy'])
  t.equal(closes[0].reason, 'error')
  t.match(closes[0].err, { message: 'no history' })
  t.equal(registry.size('a'), 0)
})

t.test('closing a stream leaves its rooms once; a client close does not end the gone response', async (t) => {
  const registry = new RoomRegistry()
  const { stream, ends, closes } = streamOn(registry, ['a', 'b'])
  stream.open(null)
  t.equal(registry.size('b'), 1)
  stream.close('client')
  stream.close('shutdown')
  t.same(ends, [])
  t.same(closes.map((c) => c.reason), ['client'])
  t.equal(registry.size('a') + registry.size('b'), 0)
  const late = event('ep', 1, 'a')
  stream.deliver(encodeSseEvent(late), late)
  stream.ping()
})

t.test('shutdown flushes an idle stream but cuts one whose client is not reading', async (t) => {
  const registry = new RoomRegistry()
  const idle = streamOn(registry, ['a'])
  idle.stream.open(null)
  idle.stream.close('shutdown')
  t.same(idle.ends, ['end'])
  const stuck = streamOn(registry, ['a'])
  stuck.stream.open(null)
  stuck.target.accept = false
  stuck.stream.ping()
  stuck.stream.ping()
  t.equal(stuck.target.writes.length, 2, 'retry, one ping; the second ping is skipped while blocked')
  stuck.stream.close('shutdown')
  t.same(stuck.ends, ['destroy'])
  t.equal(stuck.target.listenerCount('drain'), 0)
})

t.test('the hub pings every stream on one timer that runs only while streams are open', async (t) => {
  const registry = new RoomRegistry()
  const hub = new SseHub(5)
  t.notOk(hub.beating)
  const one = streamOn(registry, ['a'])
  const two = streamOn(registry, ['b'])
  one.stream.open(null)
  two.stream.open(null)
  hub.add(one.stream)
  hub.add(two.stream)
  t.ok(hub.beating)
  t.equal(hub.size, 2)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no ping')) }, 5000)
    const check = () => {
      if (one.target.text().includes(': ping') && two.target.text().includes(': ping')) {
        clearTimeout(timer)
        resolve()
      } else setImmediate(check)
    }
    check()
  })
  hub.delete(one.stream)
  t.ok(hub.beating)
  hub.delete(two.stream)
  t.notOk(hub.beating, 'no timer once the last stream is gone')
  hub.add(one.stream)
  hub.add(two.stream)
  hub.closeAll()
  t.notOk(hub.beating)
  t.equal(hub.size, 0)
  t.ok(one.stream.closed && two.stream.closed)
  t.same(one.closes.map((c) => c.reason), ['shutdown'])
})
