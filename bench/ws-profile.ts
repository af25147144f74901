// Where the time and the bytes go (docs/benchmarks.md, "WebSocket gateway"): one server of one kind with N idle joined clients, pinned
// like the fan-out benchmarks (server on CPU 0, clients on CPU 1).
//   memory:  heap snapshots after GC at N/2 and at N connections; the difference by kind of object, divided by the
//            N/2 connections in between, is what one idle joined connection holds; then who retains the largest kinds;
//   connect: a CPU profile of the server while the second N/2 clients connect (upgrade, hello, join);
//   fan-out: CPU profiles of saturation runs, one publish per event-loop turn and in bursts.
// Run: npm run bench -- ws-profile   (or: node --import tsx bench/ws-profile.ts)
// env: BENCH_SERVERS=ws-gateway (one kind: ws-gateway, ws-plain, ws-frame-once, ws-fastify, socketio)  BENCH_CLIENTS=10000
//      BENCH_DELIVERIES=200000  BENCH_BURST=20000  BENCH_PROFILE_DIR=/tmp/fastify-gateways-profile  BENCH_TOP=25
//      BENCH_RETAINERS=<comma list of kinds whose retainers to print; default: the 6 largest object kinds>
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { benchEnv, envList, envNumber, connect, launch, saturate, stop, type Contender, type Mem } from './lib/fanout.js'
import { packageDir } from './lib/build.js'
import { difference, readSnapshot, retainers, summarize } from './lib/heap.js'
import { summarizeProfile, type Hot } from './lib/profile.js'
import { fixed, int, machineNote } from './lib/stats.js'
import type { ServerKind } from './lib/servers.js'

const kind = (process.env.BENCH_SERVERS ?? 'ws-gateway').trim() as ServerKind
const clientOf: Record<string, Contender['client']> = { 'ws-gateway': 'ws', 'ws-plain': 'ws', 'ws-frame-once': 'ws', 'ws-fastify': 'ws', socketio: 'sio', 'sse-gateway': 'sse', 'sse-plain': 'sse' }
if (clientOf[kind] === undefined) {
  console.error(`BENCH_SERVERS must name one server kind: ${Object.keys(clientOf).join(', ')}`)
  process.exit(2)
}
const [n] = envList('BENCH_CLIENTS', [10_000])
const deliveries = envNumber('BENCH_DELIVERIES', 200_000)
const burstDeliveries = envNumber('BENCH_BURST', 20_000)
const top = envNumber('BENCH_TOP', 25)
const dir = process.env.BENCH_PROFILE_DIR ?? '/tmp/fastify-gateways-profile'
const deadline = setTimeout(() => {
  console.error('ws-profile: over its 600 s deadline, stopping')
  process.exit(1)
}, 600_000)
deadline.unref()

mkdirSync(dir, { recursive: true })
const file = (name: string) => join(dir, `${kind}-${n}-${name}`)
const half = Math.floor(n / 2)

packageDir()
const l = await launch({ kind, label: kind, client: clientOf[kind] }, n, 2)
try {
  console.log(`\n## Profile of ${kind} with ${int(n)} idle joined clients\n`)
  console.log(`command: ${benchEnv()}npm run bench -- ws-profile`)
  console.log(`machine: ${machineNote()}; profiles and snapshots in ${dir}\n`)

  await connect(l, half)
  const memA = await l.server.call<Mem>('mem')
  const snapA = (await l.server.call<{ file: string }>('snapshot', { file: file('a.heapsnapshot') }, 120_000)).file
  await l.server.call('mark')
  await l.server.call('profileStart', { intervalUs: 100 })
  const t0 = Date.now()
  await connect(l, n - half)
  const connectMs = Date.now() - t0
  await l.server.call('profileStop', { file: file('connect.cpuprofile') })
  const { us: connectCpu } = await l.server.call<{ us: number }>('cpu')
  const memB = await l.server.call<Mem>('mem')
  const snapB = (await l.server.call<{ file: string }>('snapshot', { file: file('b.heapsnapshot') }, 120_000)).file
  const { members } = await l.server.call<{ members: number }>('members')
  if (members !== n) throw new Error(`${members} members in the room, expected ${n}`)

  // fan-out profiles: a warm-up, then one run of each mode under the profiler
  const publishes = Math.max(1, Math.round(deliveries / n))
  const perBurst = Math.max(2, Math.round(burstDeliveries / n))
  await saturate(l, Math.max(1, Math.round(publishes / 4)), 1)
  await l.server.call('profileStart', { intervalUs: 100 })
  const spread = await saturate(l, publishes, 1)
  await l.server.call('profileStop', { file: file('fanout-1-per-turn.cpuprofile') })
  await l.server.call('profileStart', { intervalUs: 100 })
  const burst = await saturate(l, publishes, perBurst)
  await l.server.call('profileStop', { file: file('fanout-burst.cpuprofile') })
  await stop(l)

  console.log('### Memory per idle joined connection')
  console.log(`\nprocess.memoryUsage after GC, (N - N/2) / (N/2): heap ${int((memB.heapUsed - memA.heapUsed) / (n - half))} B, RSS ${int((memB.rss - memA.rss) / (n - half))} B per connection\n`)
  const a = summarize(readSnapshot(snapA))
  const bSnap = readSnapshot(snapB)
  const b = summarize(bSnap)
  const diff = difference(a, b, n - half)
  const total = diff.reduce((sum, g) => sum + g.bytes, 0)
  console.log(`heap snapshot difference: ${int(total)} B of self size per connection, by kind of object (largest ${top}):\n`)
  console.log('| kind | objects per connection | bytes per connection |')
  console.log('| --- | ---: | ---: |')
  for (const g of diff.slice(0, top)) console.log(`| ${g.kind} | ${fixed(g.count)} | ${int(g.bytes)} |`)
  const wanted = process.env.BENCH_RETAINERS?.split(',').map((k) => k.trim()).filter((k) => k !== '') ??
    diff.filter((g) => !/^(string|array |hidden |code|object shape|closure |native |system|number|regexp|symbol|bigint|synthetic|concatenated)/.test(g.kind) && g.count >= 0.9).slice(0, 6).map((g) => g.kind)
  for (const k of wanted) {
    const held = retainers(bSnap, k)
    console.log(`\nretainers of ${k}: ${held.map((r) => `${r.from}.${r.edge} (${int(r.count)})`).join(', ')}`)
  }

  const printProfile = (title: string, profile: string, note: string) => {
    const p = summarizeProfile(profile)
    console.log(`\n### ${title}\n\n${note}; profile: ${profile}\n`)
    console.log('| where | share of CPU samples |')
    console.log('| --- | ---: |')
    for (const h of p.places.slice(0, 12)) console.log(`| ${h.name} | ${fixed(h.share * 100, 1)}% |`)
    console.log('\n| function (self time) | share |')
    console.log('| --- | ---: |')
    for (const h of p.functions.slice(0, top) as Hot[]) console.log(`| ${h.name} | ${fixed(h.share * 100, 1)}% |`)
  }
  printProfile('Connect (upgrade, hello, join)', file('connect.cpuprofile'),
    `${int(n - half)} connections in ${int(connectMs)} ms; server CPU ${fixed(connectCpu / (n - half), 1)} µs per connection`)
  printProfile('Fan-out, one publish per event-loop turn', file('fanout-1-per-turn.cpuprofile'),
    `${int(publishes)} publishes to ${int(n)} clients; server CPU ${fixed(spread.cpuPerDelivery, 3)} µs per delivery${spread.complete ? '' : ' (INCOMPLETE)'}`)
  printProfile(`Fan-out, bursts of ${perBurst} publishes`, file('fanout-burst.cpuprofile'),
    `${int(publishes)} publishes to ${int(n)} clients; server CPU ${fixed(burst.cpuPerDelivery, 3)} µs per delivery${burst.complete ? '' : ' (INCOMPLETE)'}`)
  if (process.env.BENCH_KEEP !== '1') {
    rmSync(snapA)
    rmSync(snapB)
  }
} finally {
  await stop(l)
}
