// WebSocket connect benchmark: how long it takes to open N connections that each receive `hello` and join a room,
// the server's CPU per connection, and the memory each idle joined connection holds; our gateway (Fastify +
// wsGateway) against a plain `ws` server doing the same exchange, Fastify + @fastify/websocket alone and Socket.IO 4,
// all in the same run.
//
// Each round starts every contender in a fresh server process pinned to CPU 0 (--expose-gc), with client processes
// pinned to CPU 1 (the lean raw WebSocket client of bench/lib/client-worker.ts; BENCH_WS_CLIENT=ws for the `ws`
// library), and connects the clients in steps up to each size of BENCH_CLIENTS (64 connects in flight per client
// process). A step's time is from the first connect to the last `joined`; a size's time is the sum of the steps up to
// it (the same clients, no restart). After each step: heap and RSS after GC (outside the timed steps). Memory per
// connection is the difference between the last two sizes over the connections in between (marginal: one-time costs
// of the first connections excluded). Contenders are interleaved, the order rotated each round; the best round of
// each counts (other load on a shared machine only slows a run down), and the spread over the rounds is printed.
// Run: npm run bench -- ws-connect   (or: node --import tsx bench/ws-connect.ts)
// env: BENCH_CLIENTS=1000,5000,10000  BENCH_ROUNDS=3  BENCH_CLIENT_PROCS=2  BENCH_CONCURRENCY=64  BENCH_SERVERS=<kinds>
//      BENCH_MAX_S=900  BENCH_PIN=0 (no taskset)  BENCH_SOURCE=ts (TypeScript sources instead of the compiled package)
import { benchEnv, envList, envNumber, launch, stop, type Contender, type Live, type Mem } from './lib/fanout.js'
import { packageDir } from './lib/build.js'
import { CAN_PIN } from './lib/proc.js'
import { fixed, int, loadNow, machineNote, median, openFileLimit } from './lib/stats.js'
import type { ServerKind } from './lib/servers.js'

const sizes = envList('BENCH_CLIENTS', [1000, 5000, 10_000]).sort((a, b) => a - b)
const rounds = envNumber('BENCH_ROUNDS', 3)
const clientProcs = envNumber('BENCH_CLIENT_PROCS', 2)
const concurrency = envNumber('BENCH_CONCURRENCY', 64)
const maxS = envNumber('BENCH_MAX_S', 900)

let contenders: Contender[] = [
  { kind: 'ws-gateway', label: 'gateway (Fastify + wsGateway): hello, join', client: 'ws' },
  { kind: 'ws-plain', label: 'ws: hello, join', client: 'ws' },
  { kind: 'ws-fastify', label: 'Fastify + @fastify/websocket alone: hello, join', client: 'ws' },
  { kind: 'socketio', label: 'Socket.IO 4: connect, join with ack', client: 'sio' }
]
const only = process.env.BENCH_SERVERS
if (only !== undefined && only.trim() !== '') {
  const wanted = only.split(',').map((k) => k.trim())
  contenders = contenders.filter((c) => wanted.includes(c.kind))
  if (contenders.length !== wanted.length) {
    console.error('BENCH_SERVERS: choose from ws-gateway, ws-plain, ws-fastify, socketio')
    process.exit(2)
  }
}

interface Round {
  /** cumulative ms to reach each size */
  ms: number[]
  /** cumulative server CPU µs to reach each size */
  cpuUs: number[]
  mem: Mem[]
}

const deadline = setTimeout(() => {
  console.error(`ws-connect: over its ${maxS} s deadline, stopping (BENCH_MAX_S raises it)`)
  process.exit(1)
}, maxS * 1000)
deadline.unref()

const largest = sizes[sizes.length - 1]
const limit = openFileLimit()
if (limit < largest + 200) {
  console.error(`ulimit -n is ${limit}: too low for ${largest} connections in one server process; raise it or set BENCH_CLIENTS lower`)
  process.exit(2)
}
packageDir()
const loadBefore = loadNow()
const started = Date.now()
const results = new Map<ServerKind, Round[]>(contenders.map((c) => [c.kind, []]))

async function connectStep (l: Live, count: number): Promise<void> {
  const k = l.clients.length
  await Promise.all(l.clients.map((client, i) => {
    const share = Math.floor(count / k) + (i < count % k ? 1 : 0)
    return share === 0 ? undefined : client.call('connect', { count: share, concurrency }, 300_000)
  }))
}

async function runOne (contender: Contender): Promise<Round> {
  const l = await launch(contender, largest, clientProcs)
  try {
    const round: Round = { ms: [], cpuUs: [], mem: [] }
    let have = 0
    let ms = 0
    let cpuUs = 0
    for (const n of sizes) {
      await l.server.call('mark')
      const t0 = process.hrtime.bigint()
      await connectStep(l, n - have)
      ms += Number(process.hrtime.bigint() - t0) / 1e6
      cpuUs += (await l.server.call<{ us: number }>('cpu')).us
      have = n
      const { members } = await l.server.call<{ members: number }>('members')
      if (members !== n) throw new Error(`${contender.kind}: ${members} members in the room, expected ${n}`)
      round.ms.push(ms)
      round.cpuUs.push(cpuUs)
      round.mem.push(await l.server.call<Mem>('mem'))
    }
    return round
  } finally {
    await stop(l)
  }
}

for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < contenders.length; i++) {
    const contender = contenders[(i + round) % contenders.length]
    const r = await runOne(contender)
    results.get(contender.kind)?.push(r)
    if (process.env.BENCH_VERBOSE === '1') {
      console.error(`round ${round + 1} ${contender.kind}: ${r.ms.map((m) => `${int(m)} ms`).join(' / ')}`)
    }
  }
}
clearTimeout(deadline)

interface Summary { ms: number[], msMax: number[], cpu: number[], heap: number, rss: number }
function summary (kind: ServerKind): Summary {
  const list = results.get(kind) ?? []
  const [a, b] = [sizes.length >= 2 ? sizes.length - 2 : 0, sizes.length - 1]
  const span = sizes[b] - (sizes.length >= 2 ? sizes[a] : 0)
  return {
    ms: sizes.map((_, i) => Math.min(...list.map((r) => r.ms[i]))),
    msMax: sizes.map((_, i) => Math.max(...list.map((r) => r.ms[i]))),
    cpu: sizes.map((n, i) => Math.min(...list.map((r) => r.cpuUs[i])) / n),
    heap: median(list.map((r) => (r.mem[b].heapUsed - (sizes.length >= 2 ? r.mem[a].heapUsed : 0)) / span)),
    rss: median(list.map((r) => (r.mem[b].rss - (sizes.length >= 2 ? r.mem[a].rss : 0)) / span))
  }
}

const env = benchEnv()
const memSpan = sizes.length >= 2 ? `between ${int(sizes[sizes.length - 2])} and ${int(largest)}` : `over ${int(largest)}`
console.log(`\n## WebSocket connect: N clients each receive hello and join one room (${sizes.map(int).join(', ')})`)
console.log(`\ncommand: ${env}npm run bench -- ws-connect`)
console.log(`machine: ${machineNote()}; load average before ${loadBefore}, after ${loadNow()}; ulimit -n ${limit}; ` +
  `${CAN_PIN ? 'servers pinned to CPU 0, clients to CPU 1 (taskset)' : 'NOT pinned'}; ${clientProcs} client processes, ${concurrency} connects in flight each; ` +
  `${((Date.now() - started) / 1000).toFixed(0)} s`)
console.log(`best of ${rounds} interleaved rounds (spread: best to worst round); memory: after GC, per connection ${memSpan} connections (median of the rounds)\n`)
console.log(`| server | ${sizes.map((n) => `time to ${int(n)} ms (spread)`).join(' | ')} | ${sizes.map((n) => `CPU µs/conn to ${int(n)}`).join(' | ')} | heap B/conn | RSS B/conn |`)
console.log(`| --- | ${sizes.map(() => '---:').join(' | ')} | ${sizes.map(() => '---:').join(' | ')} | ---: | ---: |`)
for (const c of contenders) {
  const s = summary(c.kind)
  console.log(`| ${c.label} | ${s.ms.map((m, i) => `${int(m)} (${int(m)}-${int(s.msMax[i])})`).join(' | ')} | ${s.cpu.map((v) => fixed(v, 0)).join(' | ')} | ${int(s.heap)} | ${int(s.rss)} |`)
}

const has = (kind: ServerKind) => contenders.some((c) => c.kind === kind)
const rows: Array<{ label: string, values: string[], target: string, met: string }> = []
function ratio (label: string, num: ServerKind, den: ServerKind, pick: (s: Summary) => number[], target?: number): void {
  if (!has(num) || !has(den)) return
  const [a, b] = [pick(summary(num)), pick(summary(den))]
  const values = a.map((v, i) => v / b[i])
  rows.push({
    label,
    values: values.map((v) => fixed(v)),
    target: target === undefined ? '(info)' : `<= ${target}`,
    met: target === undefined ? '' : values.every((v) => v <= target) ? 'yes' : 'no'
  })
}
ratio('time to connect gateway / plain ws', 'ws-gateway', 'ws-plain', (s) => s.ms, 1.2)
ratio('server CPU per connection gateway / plain ws', 'ws-gateway', 'ws-plain', (s) => s.cpu)
ratio('time to connect gateway / Fastify + @fastify/websocket alone', 'ws-gateway', 'ws-fastify', (s) => s.ms)
ratio('time to connect Socket.IO / gateway', 'socketio', 'ws-gateway', (s) => s.ms)
console.log(`\n| ratio | ${sizes.map((n) => `N=${int(n)}`).join(' | ')} | target | met |`)
console.log(`| --- | ${sizes.map(() => '---:').join(' | ')} | --- | --- |`)
for (const r of rows) console.log(`| ${r.label} | ${r.values.join(' | ')} | ${r.target} | ${r.met} |`)

rows.length = 0
ratio('heap per idle joined connection gateway / plain ws', 'ws-gateway', 'ws-plain', (s) => [s.heap], 1.5)
ratio('RSS per idle joined connection gateway / plain ws', 'ws-gateway', 'ws-plain', (s) => [s.rss])
ratio('heap per connection Fastify + @fastify/websocket alone / plain ws', 'ws-fastify', 'ws-plain', (s) => [s.heap])
ratio('heap per connection gateway / Fastify + @fastify/websocket alone', 'ws-gateway', 'ws-fastify', (s) => [s.heap])
ratio('heap per connection Socket.IO / gateway', 'socketio', 'ws-gateway', (s) => [s.heap])
console.log(`\n| memory ratio (${memSpan} connections) | value | target | met |`)
console.log('| --- | ---: | --- | --- |')
for (const r of rows) console.log(`| ${r.label} | ${r.values[0]} | ${r.target} | ${r.met} |`)
