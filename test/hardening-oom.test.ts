import t from 'tap'
import { readFileSync } from 'node:fs'
import { startInstance } from './helpers/instance.js'
import { openWs, type Frames } from './helpers/ws-client.js'

/**
 * The out-of-memory attack of issue 20, scaled down (docs/security.md, "Memory budget"): 40 anonymous WebSockets
 * publish 60 KB events to `public:demo-a-<n>` rooms (allowed by the default CLIENT_PUBLISH_ROOMS) as fast as the
 * server answers. server.ts runs with its heap capped by V8 at the budget docs/security.md gives for these settings
 * plus the process's own baseline, so going over it is fatal rather than merely measured. The server must stay up,
 * pace the publishers (RATE_LIMITED past the per-address byte budget) and serve a normal client throughout.
 */

const MiB = 1024 * 1024
const HISTORY_MAX_BYTES = 8 * MiB
const SEND_BUFFER = 256 * 1024
const PUBLISHERS = 40
const ATTACK_MS = 8000
/** heap of server.ts with its gateways loaded and nothing connected (tsx, Fastify, zod, the SDKs), measured ~70 MiB */
const BASELINE_MiB = 96

/** The per-connection worst case of docs/security.md for the ws gateway, in bytes. */
function perConnection (maxPayload = 65_536, burst = 262_144): number {
  return 4096 + 2 * SEND_BUFFER + maxPayload + Math.max(burst, 4 * maxPayload) + maxPayload + SEND_BUFFER
}

function rssMiB (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

t.test('anonymous 60 KB publishers to many demo rooms: heap within the budget, publishers paced, a normal client served', async (t) => {
  t.setTimeout(120_000)
  const connections = PUBLISHERS + 2
  const budget = HISTORY_MAX_BYTES + connections * perConnection()
  const heapCap = BASELINE_MiB + Math.ceil(budget / MiB)
  t.comment(`budget for ${connections} connections: ${(budget / MiB).toFixed(1)} MiB over the baseline; V8 old space capped at ${heapCap} MiB`)
  const instance = await startInstance(t, {
    GATEWAYS: 'ws',
    HISTORY_MAX_BYTES: String(HISTORY_MAX_BYTES),
    WS_SEND_BUFFER: String(SEND_BUFFER),
    NODE_OPTIONS: `--max-old-space-size=${heapCap}`
  })
  const url = instance.wsUrl('/ws')

  // the normal client: one reader, one writer of small messages to its own room
  const reader = await openWs(url)
  const writer = await openWs(url)
  t.after(() => { reader.ws.terminate(); writer.ws.terminate() })
  await reader.next()
  await writer.next()
  reader.send({ op: 'join', room: 'public:demo-normal', ref: 'j' })
  await reader.until((f) => f.ref === 'j')

  const publishers: Frames[] = []
  for (let i = 0; i < PUBLISHERS; i++) publishers.push(await openWs(url))
  t.after(() => { for (const p of publishers) p.ws.terminate() })
  const body = 'x'.repeat(60_000)
  let acked = 0
  let limited = 0
  let other = 0
  const until = Date.now() + ATTACK_MS
  const rss: number[] = []
  const sampler = setInterval(() => { if (instance.running) rss.push(rssMiB(instance.pid)) }, 500)
  t.after(() => { clearInterval(sampler) })

  const attack = Promise.all(publishers.map(async (client, i) => {
    await client.until((f) => f.op === 'hello')
    for (let n = 0; Date.now() < until && client.ws.readyState === 1; n++) {
      const ref = `p${n}`
      client.send({ op: 'publish', room: `public:demo-a-${i * 1000 + n}`, event: 'blob', data: body, ref })
      const answer = await client.until((f) => f.ref === ref, 15_000).catch(() => null)
      if (answer?.op === 'ack') acked++
      else if (answer?.code === 'RATE_LIMITED') limited++
      else other++
    }
  }))
  // meanwhile the normal client publishes every 200 ms and must get every message
  const sent: string[] = []
  while (Date.now() < until) {
    const ref = `n${sent.length}`
    writer.send({ op: 'publish', room: 'public:demo-normal', event: 'chat', data: { ref }, ref })
    const answer = await writer.until((f) => f.ref === ref, 15_000)
    if (answer.op === 'ack') sent.push(ref)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await attack
  clearInterval(sampler)

  t.ok(instance.running, 'the server is still up')
  t.ok(sent.length >= 10, `the normal client published ${sent.length} messages during the attack`)
  for (const ref of sent) await reader.until((f) => f.op === 'event' && f.data?.ref === ref, 15_000)
  const received = reader.all.filter((f) => f.op === 'event').map((f) => f.data.ref)
  t.same(received, sent, 'the normal client received every one of them, in order')
  t.ok(limited > 0, `publishers were paced: ${acked} accepted, ${limited} RATE_LIMITED, ${other} other`)
  // one address: 256 KiB/s sustained plus a 1 MiB burst (the default WS_IP_RATE_BYTES_*), with slack for timing
  const accepted = acked * 60_000
  const allowed = (ATTACK_MS / 1000 + 2) * 262_144 + 1024 * 1024
  t.ok(accepted <= allowed * 1.5, `${(accepted / MiB).toFixed(1)} MiB accepted from one address in ${ATTACK_MS / 1000} s (allowed about ${(allowed / MiB).toFixed(1)})`)
  t.comment(`server RSS during the attack: ${rss.map((v) => v.toFixed(0)).join(' ')} MiB`)
  for (const p of publishers) p.ws.terminate()
  await instance.stop()
  t.equal(await instance.exited, 0, 'and it shuts down cleanly')
})
