import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import { z } from 'zod'
import { ensureRooms } from '../plugins/rooms.js'
import { wsGateway } from '../plugins/ws.js'
import { ensureWebsocket, socketRoute, type SocketRouteOptions } from '../plugins/shared/socket.js'
import { Admission, type AdmissionOptions } from '../lib/admission/admission.js'
import { opSchema, RoomSchema, ServerFrames } from '../lib/ws/protocol.js'
import type { OpHandler, SocketConnection } from '../lib/ws/connection.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import { rooms } from '../plugins/rooms.js'
import { Frames, waitFor } from './helpers/ws-client.js'
import { logCapture } from './helpers/app.js'

// The shared machinery as another gateway (rtc) uses it: its own ops on socketRoute, direct messages, end hooks.


const Whisper = opSchema('whisper', { to: z.string(), text: z.string() })
const Hold = opSchema('hold', {})
const Echo = opSchema('echo', { text: z.string() })
const Join = opSchema('join', { room: RoomSchema, since: z.string().optional() })

interface Seen { connections: SocketConnection[], ended: Array<{ id: string, rooms: string[] }> }

async function gateway (t: Test, overrides: Partial<SocketRouteOptions> = {}, setup?: (app: FastifyInstance) => Promise<void>,
  admission: AdmissionOptions<FastifyRequest> = {}) {
  const app = Fastify()
  t.after(() => app.close())
  await setup?.(app)
  const registry = await ensureRooms(app)
  await ensureWebsocket(app, { maxPayload: 4096, closeTimeoutMs: 200 })
  const seen: Seen = { connections: [], ended: [] }
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const ops: Record<string, OpHandler> = {
    echo: { schema: Echo, handle: (frame: z.infer<typeof Echo>, conn, ref) => { conn.send({ op: 'echo', text: frame.text, ...(ref === undefined ? {} : { ref }) }) } },
    whisper: {
      schema: Whisper,
      handle: async (frame: z.infer<typeof Whisper>, conn, ref) => {
        if (!(await conn.registry.direct(frame.to, { from: conn.id, text: frame.text }))) conn.fail('NOT_FOUND', `no peer ${frame.to}`, ref)
      }
    },
    join: {
      schema: Join,
      handle: async (frame: z.infer<typeof Join>, conn, ref) => {
        await conn.joinRoom(frame.room, {
          ...(frame.since === undefined ? {} : { since: frame.since }),
          announce: (recovered) => { conn.send(ServerFrames.joined(frame.room, ref, recovered)) }
        })
      }
    },
    boom: { schema: opSchema('boom', {}), handle: () => { throw new Error('handler bug') } },
    later: { schema: opSchema('later', {}), handle: async () => { throw new Error('async handler bug') } },
    hold: { schema: Hold, handle: async () => { await held } }
  }
  await app.register(async function rtcLike (scope) {
    socketRoute(scope, {
      path: '/peer',
      transport: 'rtc',
      registry,
      admission: new Admission({ maxConnectionsPerIp: 100, ...admission }),
      limits: { maxPayload: 4096, ratePerSec: 10_000, rateBurst: 10_000, sendBufferBytes: 1024 * 1024, pingMs: 60_000, maxRoomsPerConnection: 100, bytesPerSec: 1 << 30, bytesBurst: 1 << 30, ipBytesPerSec: 1 << 30, ipBytesBurst: 1 << 30 },
      closeTimeoutMs: 200,
      ops,
      onConnection: (conn) => { seen.connections.push(conn) },
      onEnd: (conn, rooms) => { seen.ended.push({ id: conn.id, rooms }) },
      onDirect: (conn, message) => { conn.send({ op: 'whisper', ...(message as object) }) },
      ...overrides
    })
  })
  await app.ready()
  return { app, seen, release: () => { release() } }
}

async function connect (t: Test, app: FastifyInstance, path = '/peer'): Promise<Frames> {
  let frames: Frames | undefined
  const ws = await app.injectWS(path, { socket: { remoteAddress: '10.0.0.1' } } as never, { onInit: (socket) => { frames = new Frames(socket) } })
  t.after(() => { ws.terminate() })
  await (frames as Frames).next()
  return frames as Frames
}

t.test('a gateway plugs its own ops into the shared connection; ping stays built in', async (t) => {
  const { app, seen } = await gateway(t)
  const frames = await connect(t, app)
  t.same(await frames.request({ op: 'echo', text: 'hi', ref: 1 }), { op: 'echo', text: 'hi', ref: 1 })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' })
  t.match(await frames.request({ op: 'echo' }), { op: 'error', code: 'BAD_MESSAGE', message: /text/ })
  t.equal(seen.connections.length, 1)
})

t.test('each connection has its own data slot for the gateway, kept across frames', async (t) => {
  const { app, seen } = await gateway(t, {
    ops: {
      count: {
        schema: opSchema('count', {}),
        handle: (_frame, conn, ref) => {
          const data = conn.data as { count?: number }
          data.count = (data.count ?? 0) + 1
          conn.send({ op: 'count', ref, count: data.count })
        }
      }
    }
  })
  const alice = await connect(t, app)
  const bob = await connect(t, app)
  t.same(await alice.request({ op: 'count', ref: 1 }), { op: 'count', ref: 1, count: 1 })
  t.same(await alice.request({ op: 'count', ref: 2 }), { op: 'count', ref: 2, count: 2 })
  t.same(await bob.request({ op: 'count', ref: 3 }), { op: 'count', ref: 3, count: 1 }, 'not shared with another connection')
  t.same(seen.connections[0].data, { count: 2 })
})

t.test('a direct message reaches one member of a room through registry.direct and onDirect', async (t) => {
  const { app, seen } = await gateway(t)
  const alice = await connect(t, app)
  const bob = await connect(t, app)
  const [aliceConn, bobConn] = seen.connections
  await alice.request({ op: 'join', room: 'r' })
  await bob.request({ op: 'join', room: 'r' })
  alice.send({ op: 'whisper', to: bobConn.id, text: 'psst' })
  t.same(await bob.next(), { op: 'whisper', from: aliceConn.id, text: 'psst' })
  t.match(await alice.request({ op: 'whisper', to: 'nobody.1', text: 'x', ref: 'w' }), { op: 'error', code: 'NOT_FOUND', ref: 'w' })
})

t.test('an onEnd that throws is logged and the connection still ends', async (t) => {
  const { app } = await gateway(t, { onEnd: () => { throw new Error('end hook bug') } })
  const frames = await connect(t, app)
  await frames.request({ op: 'join', room: 'a' })
  frames.ws.close(1000)
  await waitFor(() => app.rooms.size('a') === 0, 5000, 'room emptied')
  t.equal(app.rooms.size('a'), 0, 'left its room')
})

t.test('onEnd tells the gateway which rooms a closed connection left', async (t) => {
  const { app, seen } = await gateway(t)
  const frames = await connect(t, app)
  await frames.request({ op: 'join', room: 'a' })
  await frames.request({ op: 'join', room: 'b' })
  frames.ws.close(1000)
  await waitFor(() => seen.ended.length === 1, 5000, 'end reported')
  t.same(seen.ended[0].rooms.sort(), ['a', 'b'])
})

t.test('a handler that throws closes its connection with 1011, synchronously or not', async (t) => {
  const { app } = await gateway(t)
  const sync = await connect(t, app)
  sync.send({ op: 'boom' })
  t.equal((await sync.waitClose()).code, 1011)
  const async = await connect(t, app)
  async.send({ op: 'later' })
  t.equal((await async.waitClose()).code, 1011)
})

t.test('too many frames waiting behind a slow handler close the connection with 1008', async (t) => {
  const { app, release } = await gateway(t)
  t.after(release)
  const frames = await connect(t, app)
  frames.send({ op: 'hold' })
  for (let i = 0; i < 300; i++) frames.send({ op: 'ping', ref: i })
  const closed = await frames.waitClose()
  t.equal(closed.code, 1008)
  t.match(closed.reason, /waiting/)
})

t.test('an authenticate that throws synchronously on an auth frame refuses it', async (t) => {
  const { app } = await gateway(t, {}, undefined, { authenticate: (token) => { if (token !== null) throw new Error('nope'); return null } })
  const frames = await connect(t, app)
  // a host error's own text never reaches the client: the same reason as before the upgrade
  t.match(await frames.request({ op: 'auth', token: 'x' }), { op: 'error', code: 'UNAUTHENTICATED', message: 'invalid token' })
  t.equal((await frames.waitClose()).code, 1008)
})

t.test('a resume whose history lookup fails is answered recovered:false', async (t) => {
  class BrokenHistoryBus extends MemoryBus {
    override history (): never { throw new Error('history store down') }
  }
  const { app } = await gateway(t, {}, async (app) => { await app.register(rooms, { bus: new BrokenHistoryBus({ historySize: 5 }) }) })
  const frames = await connect(t, app)
  t.same(await frames.request({ op: 'join', room: 'r', since: 'abc-1' }), { op: 'joined', room: 'r', recovered: false })
  const { id } = await app.rooms.publish('r', 'e', 1)
  t.same(await frames.next(), { op: 'event', room: 'r', event: 'e', data: 1, id })
})

t.test('a host-registered @fastify/websocket with a smaller maxPayload is kept, with a warning', async (t) => {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.after(() => app.close())
  await app.register(websocket, { options: { maxPayload: 128 } })
  await app.register(wsGateway, { maxPayload: 4096 })
  await app.ready()
  t.match(logs.text(), /smaller maxPayload/)
  t.equal(app.websocketServer.options.maxPayload, 128)
})

t.test('ws and a second socket gateway share one @fastify/websocket', async (t) => {
  const { app } = await gateway(t, {}, async (app) => { await app.register(wsGateway) })
  const ws = await connect(t, app, '/ws')
  const peer = await connect(t, app)
  await ws.request({ op: 'join', room: 'public:both' })
  await peer.request({ op: 'join', room: 'public:both' })
  const { id } = await app.rooms.publish('public:both', 'e', 'x')
  t.same(await ws.next(), { op: 'event', room: 'public:both', event: 'e', data: 'x', id })
  t.same(await peer.next(), { op: 'event', room: 'public:both', event: 'e', data: 'x', id })
  t.equal(app.websocketServer.clients.size, 2)
})
