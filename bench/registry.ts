// Registry micro-benchmark: publish to one room of N in-memory members. Compares the registry (encode once per
// transport, shared by every member) with a naive loop that serialises per member, in the same run.
// Run: npm run bench -- registry   (or: node --expose-gc --min-semi-space-size=256 --max-semi-space-size=256 --import tsx bench/registry.ts)
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { Encoder, Member } from '../lib/rooms/types.js'

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 10_000)
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 300)
// allocation is read as the heap growth over a few publishes, small enough that no GC runs in between
const ALLOC_PUBLISHES = 10
const ROUNDS = 5
const payload = { title: 'New Message!', body: 'x'.repeat(120), n: 0 }

let sink = 0
const encoder: Encoder<string> = {
  name: 'bench-json',
  encode: (ev) => `{"op":"event","room":${JSON.stringify(ev.room)},"event":${JSON.stringify(ev.event)},"data":${ev.dataJson},"id":"${ev.id}"}`
}

function registryRound (publishes = PUBLISHES): { seconds: number, bytes: number, deliveries: number } {
  const registry = new RoomRegistry({ historySize: 100 })
  for (let i = 0; i < MEMBERS; i++) {
    const member: Member<string> = { id: registry.nextMemberId(), user: null, transport: 'bench', encoder, deliver: (s) => { sink = (sink + s.length) | 0 } }
    registry.join('room', member)
  }
  return measure(() => {
    let delivered = 0
    for (let i = 0; i < publishes; i++) {
      payload.n = i
      delivered += (registry.publish('room', 'notification', payload) as { delivered: number }).delivered
    }
    return delivered
  })
}

function naiveRound (publishes = PUBLISHES): { seconds: number, bytes: number, deliveries: number } {
  const callbacks = new Set<(s: string) => void>()
  for (let i = 0; i < MEMBERS; i++) callbacks.add((s) => { sink = (sink + s.length) | 0 })
  let seq = 0
  return measure(() => {
    let delivered = 0
    for (let i = 0; i < publishes; i++) {
      payload.n = i
      const id = `e-${++seq}`
      for (const send of callbacks) {
        send(JSON.stringify({ op: 'event', room: 'room', event: 'notification', data: payload, id }))
        delivered++
      }
    }
    return delivered
  })
}

function measure (work: () => number) {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  const start = process.hrtime.bigint()
  const deliveries = work()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const bytes = Math.max(0, process.memoryUsage().heapUsed - heapBefore)
  return { seconds, bytes, deliveries }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const rows: Array<{ name: string, rate: number, bytesPerDelivery: number }> = []
for (const [name, round] of [['registry (encode once)', registryRound], ['naive (stringify per member)', naiveRound]] as const) {
  round() // warm-up
  const results = Array.from({ length: ROUNDS }, () => round())
  const allocations = Array.from({ length: ROUNDS }, () => round(ALLOC_PUBLISHES))
  rows.push({
    name,
    rate: median(results.map((r) => r.deliveries / r.seconds)),
    bytesPerDelivery: median(allocations.map((r) => r.bytes / r.deliveries))
  })
}

const gcNote = typeof (globalThis as { gc?: unknown }).gc === 'function' ? '' : ' (run with --expose-gc for stable bytes)'
console.log(`\nregistry micro-benchmark: one room, ${MEMBERS} in-memory members, ${PUBLISHES} publishes x ${ROUNDS} rounds (median)${gcNote}`)
console.log('| loop | deliveries/s | heap bytes per delivery |')
console.log('| --- | ---: | ---: |')
for (const row of rows) console.log(`| ${row.name} | ${Math.round(row.rate).toLocaleString('en-US')} | ${row.bytesPerDelivery.toFixed(2)} |`)
console.log(`ratio registry / naive: ${(rows[0].rate / rows[1].rate).toFixed(2)}x`)
if (sink === -1) console.log(sink)
