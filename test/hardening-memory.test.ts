import t, { type Test } from 'tap'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { rooms } from '../plugins/rooms.js'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { openWs } from './helpers/ws-client.js'
import { openSse } from './helpers/instance.js'

/**
 * What one connection can make the server hold (docs/security.md, "Memory budget"): at most about twice its send
 * buffer unsent, whatever is published in one tick; a resume replays at most a send buffer's worth (the newest
 * events; the rest is reported missing), on ws and on SSE.
 */

const SEND_BUFFER = 8192

async function build (t: Test): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(rooms, { historySize: 100 })
  await app.register(wsGateway, { closeTimeoutMs: 200, sendBufferBytes: SEND_BUFFER })
  await app.register(sseGateway, { sendBufferBytes: SEND_BUFFER })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}

t.test('a client that reads nothing stops being handed events once it holds twice its send buffer', async (t) => {
  const { app, port } = await build(t)
  // a raw client: upgrade, join, then read nothing
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => { socket.destroy() })
  await once(socket, 'connect')
  socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await once(socket, 'data')
  const join = Buffer.from(JSON.stringify({ op: 'join', room: 'public:flood' }))
  const mask = Buffer.from([1, 2, 3, 4])
  const masked = Buffer.from(join.map((b, i) => b ^ mask[i % 4]))
  socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | join.length]), mask, masked]))
  const deadline = Date.now() + 5000
  while (app.rooms.size('public:flood') === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  socket.pause()
  t.equal(app.rooms.size('public:flood'), 1, 'joined')

  // one tick: 200 events of 1 KB, 25 times the send buffer
  const data = 'x'.repeat(1000)
  let handed = 0
  for (let i = 0; i < 200; i++) handed += (app.rooms.publish('public:flood', 'e', data) as { delivered: number }).delivered
  t.ok(handed <= (2 * SEND_BUFFER) / 1000 + 2, `handed ${handed} events, about twice the send buffer, not 200`)
  t.equal(app.rooms.size('public:flood'), 0, 'closed (1013) and out of the room at once')
})

t.test('a ws resume larger than the send buffer replays the newest events and reports recovered: false', async (t) => {
  const { app, port } = await build(t)
  const first = app.rooms.publish('public:r', 'e', 0) as { id: string }
  const data = 'y'.repeat(1000)
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push((app.rooms.publish('public:r', 'e', data) as { id: string }).id)
  const ws = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.after(() => { ws.ws.terminate() })
  await ws.next()
  ws.send({ op: 'join', room: 'public:r', since: first.id })
  t.same(await ws.next(), { op: 'joined', room: 'public:r', recovered: false }, 'not recovered: the oldest do not fit')
  ws.send({ op: 'ping', ref: 'end' })
  await ws.until((f) => f.ref === 'end')
  const replayed = ws.all.filter((f) => f.op === 'event').map((f) => f.id)
  t.ok(replayed.length > 0 && replayed.length < 20, `${replayed.length} of 20 events replayed`)
  t.same(replayed, ids.slice(-replayed.length), 'the newest ones, in order')

  const small = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.after(() => { small.ws.terminate() })
  await small.next()
  small.send({ op: 'join', room: 'public:r', since: ids[16] })
  t.same(await small.next(), { op: 'joined', room: 'public:r', recovered: true }, 'a replay within the buffer is complete')
  t.same([(await small.next()).id, (await small.next()).id, (await small.next()).id], ids.slice(17))
})

t.test('an SSE resume larger than the send buffer starts with a gap and replays the newest events', async (t) => {
  const { app, port } = await build(t)
  const first = app.rooms.publish('public:s', 'e', 0) as { id: string }
  const data = 'z'.repeat(1000)
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push((app.rooms.publish('public:s', 'e', data) as { id: string }).id)
  const sse = await openSse(t, port, '/sse?room=public:s&room=public:quiet', { 'last-event-id': first.id })
  t.same(await sse.next(), { event: 'gap', data: { room: 'public:s' }, comments: [] }, 'the truncated room gets a gap')
  const after = ids.slice(-2)
  const live = app.rooms.publish('public:s', 'e', 'live') as { id: string }
  const seen: string[] = []
  // a stream of two rooms sends stream ids: public:s's position is the first entry (docs/protocol.md, Event ids)
  for (;;) {
    const frame = await sse.next()
    const id = String(frame.id).split('~')[0]
    if (id === live.id) break
    seen.push(id)
  }
  t.ok(seen.length > 0 && seen.length < 20, `${seen.length} of 20 replayed`)
  t.same(seen.slice(-2), after, 'the newest, in order, then live')
})
