import t from 'tap'
import http from 'node:http'
import { readdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { WebSocket } from 'ws'
import { buildTestApp } from './helpers/app.js'
import { expiryWheel } from '../lib/expiry.js'
import type { RoomSummary } from '../lib/rooms/types.js'

/**
 * The short soak of the hostile suite (docs/security.md; the long one is `npm run soak`): thousands of WebSocket and
 * SSE connections opened and dropped in rounds for about 30 s (clean closes, abrupt ones, clients that stop reading
 * and are closed for it, streams aborted mid-way), joins with resume, server and client publishes flowing. Afterwards
 * every room, member and timer is gone and the heap and the open file descriptors are back to their baseline.
 */

const DURATION_MS = Number(process.env.SOAK_MS ?? 30_000)
// the soak itself, plus start-up and the rounds' settling, over the default per-file budget
t.setTimeout(DURATION_MS + 120_000)
const WS_PER_ROUND = 300
const SSE_PER_ROUND = 40
const ROOMS = 20

function collect (): void {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  gc()
}

const fds = () => readdirSync('/proc/self/fd').length
const heapMiB = () => process.memoryUsage().heapUsed / 1048576

async function settle (predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

t.test('connections churned with publishes flowing leave heap, descriptors and the registry at their baseline', async (t) => {
  const { app } = await buildTestApp({
    GATEWAYS: 'ws,sse',
    LOG_LEVEL: 'warn',
    CLIENT_PUBLISH_ROOMS: 'public:*',
    HISTORY_MAX_BYTES: String(1024 * 1024),
    WS_SEND_BUFFER: '65536',
    SSE_SEND_BUFFER: '65536',
    WS_MAX_CONN_PER_IP: '100000',
    SSE_MAX_CONN_PER_IP: '100000'
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const roomCount = () => (app.rooms.list() as RoomSummary[]).length
  let lastId = ''
  const publish = (room: string, bytes: number) => {
    lastId = (app.rooms.publish(room, 'soak', { pad: 'p'.repeat(bytes) }) as { id: string }).id
  }

  let opened = 0
  let slowClosed = 0
  const round = async (r: number) => {
    const sockets: WebSocket[] = []
    await Promise.all(Array.from({ length: WS_PER_ROUND }, async (_, i) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      ws.on('error', () => {})
      sockets.push(ws)
      await new Promise<void>((resolve) => { ws.once('open', resolve); ws.once('close', () => { resolve() }) })
      if (ws.readyState !== 1) return
      opened++
      ws.send(JSON.stringify({ op: 'join', room: `public:s${i % ROOMS}`, ...(i % 3 === 0 && lastId !== '' ? { since: lastId } : {}) }))
      ws.send(JSON.stringify({ op: 'join', room: `public:s${(i + 7) % ROOMS}` }))
      if (i % 10 === 0) ws.send(JSON.stringify({ op: 'publish', room: `public:s${i % ROOMS}`, event: 'c', data: { i, r } }))
      // a tenth stop reading: the server closes them (1013) once their send buffer is full
      if (i % 10 === 5) {
        ws.send(JSON.stringify({ op: 'join', room: 'public:slow' }))
        ;(ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      }
    }))
    const streams: http.ClientRequest[] = []
    await Promise.all(Array.from({ length: SSE_PER_ROUND }, async (_, i) => {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, agent, path: `/sse?room=public:s${i % ROOMS}&room=public:s${(i + 3) % ROOMS}`, headers: i % 2 === 0 && lastId !== '' ? { 'last-event-id': lastId } : {} }, (res) => {
          opened++
          if (i % 4 === 1) res.pause()
          else res.resume()
          resolve()
        })
        req.on('error', () => { resolve() })
        streams.push(req)
      })
    }))
    // publishes: small ones to every room, and 2 KB ones that overflow the paused readers
    for (let n = 0; n < 60; n++) publish(`public:s${n % ROOMS}`, n % 2 === 0 ? 200 : 2048)
    await new Promise((resolve) => setImmediate(resolve))
    for (let n = 0; n < 60; n++) publish(`public:s${n % ROOMS}`, 2048)
    // the readers that stopped: more than their socket and send buffers hold (one shared frame per event)
    await settle(() => app.rooms.size('public:slow') > 0, 'slow readers joined')
    const slow = app.rooms.size('public:slow')
    for (let n = 0; n < 80 && app.rooms.size('public:slow') > 0; n++) {
      publish('public:slow', 60_000)
      if (n % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    slowClosed += slow - app.rooms.size('public:slow')
    // drop: a third cleanly, a third abruptly, the rest by destroying their sockets mid-stream
    sockets.forEach((ws, i) => {
      // (a reader that stopped cannot finish a closing handshake: it is dropped)
      if (i % 10 === 5) ws.terminate()
      else if (i % 3 === 0) ws.close(1000)
      else if (i % 3 === 1) ws.terminate()
      else (ws as unknown as { _socket?: { destroy: () => void } })._socket?.destroy()
    })
    for (const req of streams) req.destroy()
    await settle(() => roomCount() === 0, 'every member gone')
  }

  // warm-up: code paths compiled, pools and the history at their working size
  await round(0)
  collect()
  const baseline = { heap: heapMiB(), fds: fds() }
  const started = Date.now()
  let rounds = 0
  while (Date.now() - started < DURATION_MS) {
    await round(++rounds)
    if (process.env.SOAK_DEBUG !== undefined) t.comment(`round ${rounds}: ${opened} opened, heap ${heapMiB().toFixed(1)} MiB, ${fds()} fds`)
  }
  await settle(() => fds() <= baseline.fds + 5, 'descriptors released', 20_000).catch(() => {})
  collect()
  const after = { heap: heapMiB(), fds: fds() }
  t.comment(`${rounds} rounds in ${((Date.now() - started) / 1000).toFixed(0)} s: ${opened} connections opened, ${slowClosed} slow readers closed with 1013`)
  if (process.env.SOAK_DEBUG !== undefined) {
    const { execFileSync } = await import('node:child_process')
    t.comment(execFileSync('sh', ['-c', `ls -l /proc/${process.pid}/fd; ss -tanp | grep pid=${process.pid} | head -40`]).toString())
  }
  t.comment(`heap ${baseline.heap.toFixed(1)} -> ${after.heap.toFixed(1)} MiB; descriptors ${baseline.fds} -> ${after.fds}`)
  t.ok(opened >= 2000, `thousands of connections churned (${opened})`)
  t.ok(slowClosed > 0, 'slow readers were among them')
  t.same(app.rooms.list(), [], 'no room has a member left')
  t.equal(expiryWheel.size, 0, 'no expiry left scheduled')
  t.ok(after.fds <= baseline.fds + 5, `descriptors back to the baseline (${baseline.fds} -> ${after.fds})`)
  t.ok(after.heap <= baseline.heap + 12, `heap back to the baseline (${baseline.heap.toFixed(1)} -> ${after.heap.toFixed(1)} MiB)`)
})
