// The servers the fan-out benchmarks compare, each with the same surface: listen on 127.0.0.1, let clients join
// the one room, publish one event to all of them. Every server sends the same event, about 200 bytes of JSON:
//   ws kinds:  {"op":"event","room":"public:bench","event":"tick","data":{"t":..,"n":..,"title":..,"body":..},"id":".."}
//   socket.io: 42["tick",{"t":..,"n":..,"title":..,"body":..}]
//   sse kinds: id: ..\nevent: tick\ndata: {"room":"public:bench","data":{..}}\n\n
// `t` is the publish time in µs of process.hrtime (see proc.ts), read by the clients for the latency.
// On connect, the ws kinds all send `{"op":"hello","conn":..,"user":null}` (as the gateway does) and answer a join
// with `{"op":"joined","room":..}`: the connect benchmark times exactly that exchange.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import * as ws from 'ws'
import { WebSocketServer, type WebSocket } from 'ws'
import { packageModule } from './build.js'

export const ROOM = 'public:bench'
export const EVENT = 'tick'

export interface BenchData { t: number, n: number, title: string, body: string }
export function benchData (t: number, n: number): BenchData {
  return { t, n, title: 'New Message!', body: 'x'.repeat(100) }
}

export interface BenchServer {
  /** path clients connect to (ws, socket.io: the upgrade URL path; sse: the stream URL with its query) */
  readonly path: string
  readonly port: number
  /** members of the room */
  members (): number
  /** every TCP connection the server accepted (for the back-pressure check between bursts) */
  readonly sockets: ReadonlySet<Socket>
  publish (data: BenchData): void
}

export type ServerKind = 'ws-gateway' | 'ws-gateway-metrics' | 'ws-fastify' | 'ws-plain' | 'ws-frame-once' | 'socketio' | 'sse-gateway' | 'sse-plain'

export const SERVER_KINDS: Record<ServerKind, () => Promise<BenchServer>> = {
  'ws-gateway': async () => await wsGateway(),
  'ws-gateway-metrics': async () => await wsGateway({ metrics: true }),
  'ws-fastify': fastifyWs,
  'ws-plain': () => plainWs('plain'),
  'ws-frame-once': () => plainWs('frame-once'),
  socketio: socketIo,
  'sse-gateway': sseGateway,
  'sse-plain': plainSse
}

function track (server: Server): Set<Socket> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  })
  return sockets
}

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve)
  })
  return (server.address() as { port: number }).port
}

/**
 * Our gateway: Fastify + wsGateway, anonymous clients in a public room, events from `app.rooms.publish`. With
 * `metrics`, the metrics plugin too (process defaults, HTTP histogram) and `/metrics` scraped every BENCH_SCRAPE_MS
 * (default 1000) through Fastify's inject, in the server's own process: the scrape's whole cost lands on the server.
 */
async function wsGateway (options: { metrics?: boolean } = {}): Promise<BenchServer> {
  const { default: Fastify } = await import('fastify')
  // the compiled package (bench/lib/build.ts), as users run it
  const { wsGateway } = await import(packageModule('plugins/ws.js')) as typeof import('../../plugins/ws.js')
  const app = Fastify({ logger: false })
  if (options.metrics === true) {
    const { metrics } = await import('../../plugins/metrics.js')
    await app.register(metrics)
    const scrapeMs = Number(process.env.BENCH_SCRAPE_MS ?? 1000)
    const scrape = setInterval(() => {
      app.inject('/metrics').then((res) => { if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`) }, (err: unknown) => { throw err })
    }, scrapeMs)
    scrape.unref()
  }
  await app.register(wsGateway, {
    path: '/ws',
    publicRooms: ['public:*'],
    maxConnectionsPerIp: 1_000_000,
    // no server pings during the run; the default rate limit (50/s) and send buffer bound (1 MiB) stay
    pingMs: 3_600_000
  })
  const sockets = track(app.server)
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const port = (app.server.address() as { port: number }).port
  return {
    path: '/ws',
    port,
    sockets,
    members: () => app.rooms.size(ROOM),
    publish: (data) => { app.rooms.publish(ROOM, EVENT, data) }
  }
}

/**
 * Fastify + @fastify/websocket with nothing else: a Set of sockets as the room, `send` per client. The floor of any
 * gateway built on @fastify/websocket (used for the memory per connection).
 */
async function fastifyWs (): Promise<BenchServer> {
  const { default: Fastify } = await import('fastify')
  const { default: websocket } = await import('@fastify/websocket')
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false } })
  const room = new Set<WebSocket>()
  let seq = 0
  let conns = 0
  app.get('/ws', { websocket: true }, (socket) => {
    socket.send(JSON.stringify({ op: 'hello', conn: `0.${(++conns).toString(36)}`, user: null }))
    socket.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as { op?: string, room?: string }
      if (msg.op === 'join' && msg.room === ROOM) {
        room.add(socket)
        socket.send(JSON.stringify({ op: 'joined', room: ROOM }))
      }
    })
    socket.once('close', () => { room.delete(socket) })
  })
  const sockets = track(app.server)
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  return {
    path: '/ws',
    port: (app.server.address() as { port: number }).port,
    sockets,
    members: () => room.size,
    publish: (data) => {
      const text = JSON.stringify({ op: 'event', room: ROOM, event: EVENT, data, id: `0-${++seq}` })
      for (const socket of room) socket.send(text)
    }
  }
}

/**
 * A plain `ws` server: the room is a Set of sockets. `plain` serialises once and calls `send` per client (the usual
 * loop); `frame-once` also frames once (`WebSocket.Sender.frame`) and writes the same Buffer to every `ws._socket`.
 */
async function plainWs (mode: 'plain' | 'frame-once'): Promise<BenchServer> {
  const server = createServer()
  const sockets = track(server)
  const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false })
  const room = new Set<WebSocket>()
  let seq = 0
  let conns = 0
  wss.on('connection', (socket) => {
    socket.send(JSON.stringify({ op: 'hello', conn: `0.${(++conns).toString(36)}`, user: null }))
    socket.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as { op?: string, room?: string }
      if (msg.op === 'join' && msg.room === ROOM) {
        room.add(socket)
        socket.send(JSON.stringify({ op: 'joined', room: ROOM }))
      }
    })
    socket.once('close', () => { room.delete(socket) })
  })
  const port = await listen(server)
  const Sender = (ws as unknown as { Sender: { frame (data: Buffer, o: object): Buffer[] } }).Sender
  const publish = mode === 'plain'
    ? (data: BenchData) => {
        const text = JSON.stringify({ op: 'event', room: ROOM, event: EVENT, data, id: `0-${++seq}` })
        for (const socket of room) socket.send(text)
      }
    : (data: BenchData) => {
        const payload = Buffer.from(JSON.stringify({ op: 'event', room: ROOM, event: EVENT, data, id: `0-${++seq}` }))
        const frame = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }))
        for (const socket of room) (socket as unknown as { _socket: Socket })._socket.write(frame)
      }
  return { path: '/ws', port, sockets, members: () => room.size, publish }
}

/** Socket.IO 4 rooms, websocket transport only, no compression. */
async function socketIo (): Promise<BenchServer> {
  const { Server: IoServer } = await import('socket.io')
  const server = createServer()
  const sockets = track(server)
  const io = new IoServer(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false, pingInterval: 3_600_000, pingTimeout: 3_600_000 })
  io.on('connection', (socket) => {
    socket.on('join', (room: string, ack: () => void) => {
      socket.join(room)
      ack()
    })
  })
  const port = await listen(server)
  return {
    path: '/socket.io/',
    port,
    sockets,
    members: () => io.sockets.adapter.rooms.get(ROOM)?.size ?? 0,
    publish: (data) => { io.to(ROOM).emit(EVENT, data) }
  }
}

/** Our gateway: Fastify + sseGateway, anonymous streams of a public room, events from `app.rooms.publish`. */
async function sseGateway (): Promise<BenchServer> {
  const { default: Fastify } = await import('fastify')
  const { sseGateway } = await import(packageModule('plugins/sse.js')) as typeof import('../../plugins/sse.js')
  const app = Fastify({ logger: false })
  await app.register(sseGateway, {
    path: '/sse',
    publicRooms: ['public:*'],
    maxConnectionsPerIp: 1_000_000,
    heartbeatMs: 3_600_000
  })
  const sockets = track(app.server)
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const port = (app.server.address() as { port: number }).port
  return {
    path: `/sse?room=${ROOM}`,
    port,
    sockets,
    members: () => app.rooms.size(ROOM),
    publish: (data) => { app.rooms.publish(ROOM, EVENT, data) }
  }
}

/** A plain node:http SSE server: the room is a Set of responses, one `res.write` of the event text per response. */
async function plainSse (): Promise<BenchServer> {
  const streams = new Set<ServerResponse>()
  let seq = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/sse')) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
    streams.add(res)
    res.once('close', () => { streams.delete(res) })
    res.write('retry: 3000\n\n')
  })
  const sockets = track(server)
  const port = await listen(server)
  return {
    path: `/sse?room=${ROOM}`,
    port,
    sockets,
    members: () => streams.size,
    publish: (data) => {
      const text = `id: 0-${++seq}\nevent: ${EVENT}\ndata: {"room":"${ROOM}","data":${JSON.stringify(data)}}\n\n`
      for (const res of streams) res.write(text)
    }
  }
}
