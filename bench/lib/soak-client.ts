// The client side of `npm run soak` (bench/soak.ts), in a process of its own: thousands of WebSocket and SSE
// connections kept at a target count with churn, some of them readers that stop reading, publishes flowing, and a
// probe (a reader and a writer of a quiet room) that measures what a normal client sees: publish-to-receive latency.
import http from 'node:http'
import WebSocket from 'ws'
import { nowUs, serveParent } from './proc.js'

interface Plan {
  port: number
  /** connections kept open: ws, and SSE streams among them */
  connections: number
  sseShare: number
  rooms: number
  /** connections replaced per second (closed one way or another, opened anew) */
  churnPerSec: number
  /** share of new connections that stop reading after they joined */
  slowShare: number
  /** publishes per second from ws clients, and their data size */
  publishPerSec: number
  publishBytes: number
  /** every connection joins the firehose room, not only the slow readers (to compare with readers that keep up) */
  firehoseAll?: boolean
}

interface Conn { close: (how: number) => void, slow: boolean, sse: boolean }

const live = new Set<Conn>()
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
let plan: Plan | null = null
const counts = { opened: 0, failed: 0, closedByServer: 0, slowClosed: 0, published: 0, publishRefused: 0 }
let latencies: number[] = []
const probeSent = new Map<string, number>()

function openWs (p: Plan, i: number, slow: boolean): void {
  const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`)
  const conn: Conn = { slow, sse: false, close: (how) => { if (how === 0) ws.close(1000); else ws.terminate() } }
  live.add(conn)
  ws.on('error', () => {})
  ws.once('close', (code) => {
    if (live.delete(conn)) counts.closedByServer++
    if (code === 1013) counts.slowClosed++
  })
  ws.once('open', () => {
    counts.opened++
    ws.send(JSON.stringify({ op: 'join', room: `public:soak-${i % p.rooms}` }))
    if (slow || p.firehoseAll === true) ws.send(JSON.stringify({ op: 'join', room: 'public:soak-firehose' }))
    if (slow) {
      // stops reading: its kernel and send buffers fill until the server closes it (1013)
      setTimeout(() => { (ws as unknown as { _socket?: { pause: () => void } })._socket?.pause() }, 50)
    }
  })
  ws.on('unexpected-response', () => { counts.failed++ })
}

function openSse (p: Plan, i: number, slow: boolean): void {
  let request: http.ClientRequest | null = null
  const conn: Conn = { slow, sse: true, close: () => { request?.destroy() } }
  live.add(conn)
  request = http.get({ host: '127.0.0.1', port: p.port, agent, path: `/sse?room=public:soak-${i % p.rooms}${slow ? '&room=public:soak-firehose' : ''}` }, (res) => {
    counts.opened++
    if (slow) res.pause()
    else res.resume()
    res.once('close', () => { if (live.delete(conn)) counts.closedByServer++ })
  })
  request.on('error', () => { if (live.delete(conn)) counts.failed++ })
}

let seq = 0
function top (p: Plan): void {
  while (live.size < p.connections) {
    const i = seq++
    const slow = Math.random() < p.slowShare
    if (Math.random() < p.sseShare) openSse(p, i, slow)
    else openWs(p, i, slow)
  }
}

/** The probe: one reader of a quiet room and one writer publishing a stamped event every 100 ms. */
async function startProbe (port: number): Promise<void> {
  const reader = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  const writer = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  await Promise.all([reader, writer].map(async (ws) => await new Promise((resolve) => ws.once('open', resolve))))
  reader.send(JSON.stringify({ op: 'join', room: 'public:soak-probe' }))
  reader.on('message', (raw) => {
    const frame = JSON.parse(raw.toString()) as { op: string, data?: { n?: string } }
    if (frame.op !== 'event' || frame.data?.n === undefined) return
    const sent = probeSent.get(frame.data.n)
    if (sent !== undefined) {
      latencies.push((nowUs() - sent) / 1000)
      probeSent.delete(frame.data.n)
    }
  })
  let n = 0
  setInterval(() => {
    const id = String(++n)
    probeSent.set(id, nowUs())
    writer.send(JSON.stringify({ op: 'publish', room: 'public:soak-probe', event: 'probe', data: { n: id } }))
  }, 100)
}

/** Publishers: a few connections that publish to the soak rooms and the firehose the slow readers sit in. */
async function startPublishers (p: Plan): Promise<void> {
  const publishers = await Promise.all(Array.from({ length: 8 }, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`)
    ws.on('error', () => {})
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as { op: string }
      if (frame.op === 'ack') counts.published++
      else if (frame.op === 'error') counts.publishRefused++
    })
    await new Promise((resolve) => ws.once('open', resolve))
    return ws
  }))
  const pad = 'x'.repeat(Math.max(0, p.publishBytes - 60))
  let k = 0
  const perTick = p.publishPerSec / 20
  let owed = 0
  setInterval(() => {
    owed += perTick
    for (; owed >= 1; owed--) {
      const ws = publishers[k++ % publishers.length]
      const room = k % 4 === 0 ? 'public:soak-firehose' : `public:soak-${k % p.rooms}`
      if (ws.readyState === 1) ws.send(JSON.stringify({ op: 'publish', room, event: 'soak', data: { k, pad } }))
    }
  }, 50)
}

serveParent({
  async start (msg) {
    plan = msg.plan as Plan
    const p = plan
    await startProbe(p.port)
    await startPublishers(p)
    top(p)
    // churn: every 100 ms, replace a tenth of churnPerSec connections, a third cleanly, the rest abruptly
    setInterval(() => {
      const drop = Math.round(p.churnPerSec / 10)
      let i = 0
      for (const conn of live) {
        if (i++ >= drop) break
        live.delete(conn)
        conn.close(conn.sse || i % 3 !== 0 ? 1 : 0)
      }
      top(p)
    }, 100)
    return {}
  },
  sample () {
    const sample = { live: live.size, ...counts, latencies: Float64Array.from(latencies), probeLost: [...probeSent.values()].filter((t) => nowUs() - t > 5_000_000).length }
    latencies = []
    for (const [n, t] of probeSent) if (nowUs() - t > 5_000_000) probeSent.delete(n)
    return sample
  }
})

