// The fan-out benchmark driver shared by bench/ws-fanout.ts and bench/sse-fanout.ts.
//
// For each N: every contender server starts in a fresh process pinned to CPU 0 (with --expose-gc), and gets N
// clients from `clientProcs` client processes pinned to CPU 1, all in one room. Then:
//   memory:     heap and RSS after GC, measured after 10% of the clients (warm) and after all of them; the difference
//               over the last 90% is the cost of one idle connection (one-time costs of the first connections excluded);
//   warm-up:    one unmeasured saturation run per contender;
//   latency:    `rate` publishes per second for `latencyS` seconds; each delivery's publish-to-receive time is the
//               client's process.hrtime minus the publish's process.hrtime (one monotonic clock for every process,
//               verified with checkClocks), p50 and p99 over every delivery;
//   saturation: back-to-back publishing, in two ways: one publish per event-loop turn (events that arrive one by one,
//               from I/O) and bursts of several publishes in one synchronous go (a batch from a queue); the server
//               waits before a go while a socket has more than 64 KiB queued in user space. Deliveries are counted at
//               the clients; rate = deliveries / (last delivery at any client - first publish). Also the server's CPU
//               time per delivery (user + system, process.cpuUsage), which moves less with other load on the machine.
//               `rounds` rounds with the contenders interleaved (order rotated each round), so a change of load on
//               the shared machine hits all of them alike; the best round of each is reported (other load only
//               slows a run down), with the median share of its CPU the server got.
import { CAN_PIN, checkClocks, startChild, stopChild, type Child } from './proc.js'
import { concat, fixed, int, loadNow, machineNote, median, openFileLimit, percentile } from './stats.js'
import type { ServerKind } from './servers.js'
import { PACKAGE_DIR_ENV, packageDir } from './build.js'

export interface Contender {
  kind: ServerKind
  label: string
  client: 'ws' | 'sio' | 'sse'
  /** measured for memory per idle connection only (started, connected, measured, stopped) */
  memoryOnly?: boolean
}

type Metric = 'rate' | 'rateBurst' | 'cpu' | 'cpuBurst' | 'heap' | 'rss'

export interface Ratio {
  label: string
  num: ServerKind
  den: ServerKind
  /** rate*: num / den of deliveries per second; cpu*: den / num of CPU per delivery (the throughput it implies); heap, rss: num / den */
  metric: Metric
  target: string
  /** true when the target is met by `value` */
  meets: (value: number) => boolean
}

export interface FanoutConfig {
  title: string
  command: string
  contenders: Contender[]
  ratios: Ratio[]
  sizes: number[]
  clientProcs: number
  rounds: number
  /** deliveries per saturation run (publishes = this / N) */
  deliveries: number
  /** deliveries per synchronous burst in the burst mode (publishes per burst = this / N, at least 2) */
  burstDeliveries: number
  /** publishes per second in the latency phase; 0: `latencyDeliveries` / N (at most 20/s) */
  rate: number
  /** deliveries per second in the latency phase when `rate` is 0: a load every contender sustains */
  latencyDeliveries: number
  latencyS: number
  /** whole-benchmark deadline */
  maxS: number
}

const SERVER_CPU = 0
const CLIENT_CPU = 1
export const HIGH_WATER = 64 * 1024
const CONNECT_CONCURRENCY = 64
const VERBOSE = process.env.BENCH_VERBOSE === '1'
const t00 = Date.now()
function progress (message: string): void {
  if (VERBOSE) console.error(`[${((Date.now() - t00) / 1000).toFixed(1)} s] ${message}`)
}

export interface Mem { heapUsed: number, rss: number }
export interface Run { rate: number, cpuPerDelivery: number, lagMs: number, complete: boolean, stalls: number, cpuShare: number }
export interface Result {
  kind: ServerKind
  label: string
  n: number
  perBurst: number
  heapPerConn: number
  rssPerConn: number
  p50: number
  p99: number
  latencyComplete: boolean
  /** one publish per event-loop turn */
  spread: Run[]
  /** `perBurst` publishes per turn */
  burst: Run[]
}

export interface Live {
  contender: Contender
  server: Child
  clients: Child[]
  result: Result
}

export async function runFanout (config: FanoutConfig): Promise<void> {
  const only = process.env.BENCH_SERVERS
  if (only !== undefined && only.trim() !== '') {
    const wanted = only.split(',').map((k) => k.trim())
    const unknown = wanted.filter((k) => !config.contenders.some((c) => c.kind === k))
    if (unknown.length > 0) {
      console.error(`BENCH_SERVERS: unknown ${unknown.join(', ')}; choose from ${config.contenders.map((c) => c.kind).join(', ')}`)
      process.exit(2)
    }
    config = { ...config, contenders: config.contenders.filter((c) => wanted.includes(c.kind)) }
  }
  const deadline = setTimeout(() => {
    console.error(`fan-out benchmark: over its ${config.maxS} s deadline, stopping (BENCH_MAX_S raises it)`)
    process.exit(1) // proc.ts kills every child on exit
  }, config.maxS * 1000)
  deadline.unref()

  const limit = openFileLimit()
  const largest = Math.max(...config.sizes)
  if (limit < largest + 200) {
    console.error(`ulimit -n is ${limit}: too low for ${largest} connections in one server process; raise it (ulimit -n 65536) or set BENCH_CLIENTS lower`)
    process.exit(2)
  }
  packageDir()
  const loadBefore = loadNow()
  const started = Date.now()
  const results: Result[] = []
  let clockNote = ''
  for (const n of config.sizes) {
    const { results: sized, clock } = await runSize(config, n)
    results.push(...sized)
    clockNote = clock
  }
  const seconds = (Date.now() - started) / 1000
  clearTimeout(deadline)
  print(config, results, { loadBefore, loadAfter: loadNow(), seconds, limit, clockNote })
}

async function runSize (config: FanoutConfig, n: number): Promise<{ results: Result[], clock: string }> {
  const live: Live[] = []
  const memoryOnly: Result[] = []
  const order = config.contenders.map((c) => c.kind)
  try {
    // started side by side (process start-up and connecting dominate the run time; each server's memory is its own)
    const started = await Promise.allSettled(config.contenders.map(async (contender) => {
      const l = await startContender(config, contender, n)
      if (contender.memoryOnly === true) {
        memoryOnly.push(l.result)
        await Promise.all([l.server, ...l.clients].map((child) => stopChild(child)))
      } else {
        live.push(l)
      }
    }))
    const failed = started.find((s) => s.status === 'rejected')
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
    live.sort((a, b) => order.indexOf(a.contender.kind) - order.indexOf(b.contender.kind))
    const clock = await checkClocks(live.flatMap((l) => [l.server, ...l.clients]))
    const clockNote = `clock check: every child's process.hrtime fell inside the parent's send/receive window: ${clock.ok ? 'yes' : 'NO'} (widest IPC round trip ${fixed(clock.maxRttUs / 1000)} ms)`
    const publishes = Math.max(1, Math.round(config.deliveries / n))
    const perBurst = Math.max(2, Math.round(config.burstDeliveries / n))
    for (const l of live) {
      l.result.perBurst = perBurst
      await saturate(l, Math.max(1, Math.round(publishes / 4)), 1) // warm-up
    }
    progress(`N=${n}: warm-up done`)
    for (const l of live) await latency(config, l)
    progress(`N=${n}: latency done`)
    for (let round = 0; round < config.rounds; round++) {
      for (let i = 0; i < live.length; i++) {
        const l = live[(i + round) % live.length]
        const spread = await saturate(l, publishes, 1)
        const burst = await saturate(l, publishes, perBurst)
        l.result.spread.push(spread)
        l.result.burst.push(burst)
        progress(`N=${n} round ${round + 1} ${l.contender.kind}: ${int(spread.rate)} / ${int(burst.rate)} deliveries/s, ` +
          `${fixed(spread.cpuPerDelivery)} / ${fixed(burst.cpuPerDelivery)} µs CPU per delivery, client lag ${fixed(spread.lagMs, 0)} / ${fixed(burst.lagMs, 0)} ms, ` +
          `back-pressure waits ${spread.stalls} / ${burst.stalls}, server CPU share ${fixed(spread.cpuShare)} / ${fixed(burst.cpuShare)} (1 / ${perBurst} publishes per turn)`)
      }
    }
    const results = [...live.map((l) => l.result), ...memoryOnly].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind))
    return { results, clock: clockNote }
  } finally {
    await Promise.all(live.flatMap((l) => [l.server, ...l.clients]).map((child) => stopChild(child)))
  }
}

/** the client of the ws kinds: the lean raw client (default) or the `ws` library (BENCH_WS_CLIENT=ws) */
const WS_CLIENT = process.env.BENCH_WS_CLIENT === 'ws' ? 'ws' : 'raw'

/** Starts `contender`'s server (CPU 0, --expose-gc) and `clientProcs` client processes (CPU 1), nothing connected yet. */
export async function launch (contender: Contender, n: number, clientProcs: number): Promise<Live> {
  const server = startChild(`server ${contender.kind}`, 'bench/lib/server-worker.ts', {
    cpu: SERVER_CPU, nodeFlags: ['--expose-gc'], args: [contender.kind]
  })
  const clients: Child[] = []
  try {
    const { port, path } = await server.call<{ port: number, path: string }>('start', {}, 60_000)
    const procs = Math.max(1, Math.min(clientProcs, n))
    const client = contender.client === 'ws' ? WS_CLIENT : contender.client
    for (let i = 0; i < procs; i++) {
      clients.push(startChild(`client ${contender.kind} #${i + 1}`, 'bench/lib/client-worker.ts', {
        cpu: CLIENT_CPU, args: [client, String(port), path]
      }))
    }
    // booted and answering before anything is timed
    await Promise.all(clients.map((c) => c.call('clock', {}, 60_000)))
  } catch (err) {
    for (const child of [server, ...clients]) child.kill()
    throw err
  }
  const result: Result = {
    kind: contender.kind, label: contender.label, n, perBurst: 0, heapPerConn: NaN, rssPerConn: NaN, p50: NaN, p99: NaN,
    latencyComplete: false, spread: [], burst: []
  }
  return { contender, server, clients, result }
}

/** Stops a launched server and its clients. */
export async function stop (l: Live): Promise<void> {
  await Promise.all([l.server, ...l.clients].map((child) => stopChild(child)))
}

async function startContender (config: FanoutConfig, contender: Contender, n: number): Promise<Live> {
  const l = await launch(contender, n, config.clientProcs)
  const { server, clients, result } = l
  try {
    const warm = Math.max(clients.length, Math.round(n / 10))
    await connect(l, warm)
    const before = await server.call<Mem>('mem')
    await connect(l, n - warm)
    const after = await server.call<Mem>('mem')
    const { members } = await server.call<{ members: number }>('members')
    if (members !== n) throw new Error(`${contender.kind}: ${members} members in the room, expected ${n}`)
    result.heapPerConn = (after.heapUsed - before.heapUsed) / (n - warm)
    result.rssPerConn = (after.rss - before.rss) / (n - warm)
    progress(`N=${n} ${contender.kind}: started, ${n} clients in the room`)
    return l
  } catch (err) {
    for (const child of [server, ...clients]) child.kill()
    throw err
  }
}

/** `count` more connections, spread over the client processes */
export async function connect (l: Live, count: number): Promise<void> {
  const k = l.clients.length
  await Promise.all(l.clients.map((client, i) => {
    const share = Math.floor(count / k) + (i < count % k ? 1 : 0)
    return share === 0 ? undefined : client.call('connect', { count: share, concurrency: CONNECT_CONCURRENCY }, 180_000)
  }))
}

interface Done { count: number, lastUs: number, lost: number, samples?: Float64Array }

/** Waits for every client process to finish the armed phase, at most `timeoutMs`; a late one reports where it is. */
export async function collect (l: Live, timeoutMs: number): Promise<{ done: Done[], complete: boolean }> {
  let complete = true
  const done = await Promise.all(l.clients.map(async (client) => {
    try {
      return await client.call<Done>('wait', {}, timeoutMs)
    } catch {
      complete = false
      return await client.call<Done>('report')
    }
  }))
  const lost = done.reduce((sum, d) => sum + d.lost, 0)
  if (lost > 0) throw new Error(`${l.contender.kind}: ${lost} client connections closed during the run`)
  return { done, complete }
}

export async function arm (l: Live, perConn: number, latency: boolean): Promise<number> {
  const armed = await Promise.all(l.clients.map((client) => client.call<{ target: number }>('arm', { perConn, latency })))
  return armed.reduce((sum, a) => sum + a.target, 0)
}

function latencyRate (config: FanoutConfig, n: number): number {
  return config.rate > 0 ? config.rate : Math.min(20, config.latencyDeliveries / n)
}

async function latency (config: FanoutConfig, l: Live): Promise<void> {
  const rate = latencyRate(config, l.result.n)
  const count = Math.max(1, Math.round(rate * config.latencyS))
  await arm(l, count, true)
  await l.server.call('steady', { rate, count }, (config.latencyS + 30) * 1000)
  const { done, complete } = await collect(l, 20_000)
  const samples = concat(done.map((d) => d.samples))
  l.result.p50 = percentile(samples, 50) / 1000
  l.result.p99 = percentile(samples, 99) / 1000
  l.result.latencyComplete = complete
}

export async function saturate (l: Live, publishes: number, perTurn: number): Promise<Run> {
  const expected = await arm(l, publishes, false)
  const maxMs = 20_000
  const sent = await l.server.call<{ t0: number, t1: number, published: number, stalls: number }>('burst', { publishes, perTurn, highWater: HIGH_WATER, maxMs }, maxMs + 10_000)
  const { done, complete } = await collect(l, sent.published === publishes ? 20_000 : 1000)
  const { us: cpuUs } = await l.server.call<{ us: number }>('cpu')
  const deliveries = done.reduce((sum, d) => sum + d.count, 0)
  const last = Math.max(...done.map((d) => d.lastUs))
  return {
    rate: deliveries / ((last - sent.t0) / 1e6),
    cpuPerDelivery: cpuUs / deliveries,
    lagMs: (last - sent.t1) / 1000,
    complete: complete && deliveries === expected,
    stalls: sent.stalls,
    cpuShare: cpuUs / (last - sent.t0)
  }
}

interface Summary { rate: number, rateBurst: number, cpu: number, cpuBurst: number, share: number, lag: number, complete: boolean }
/**
 * Best of the rounds: highest deliveries/s, lowest CPU per delivery. Other load on a shared machine only ever slows a
 * run down (and makes its CPU time per delivery grow with cold caches), so the best round is the least disturbed one.
 */
function summary (r: Result): Summary {
  const best = (runs: Run[], pick: (x: Run) => number, better: (a: number, b: number) => number) => runs.map(pick).reduce((a, b) => better(a, b))
  return {
    rate: best(r.spread, (x) => x.rate, Math.max),
    rateBurst: best(r.burst, (x) => x.rate, Math.max),
    cpu: best(r.spread, (x) => x.cpuPerDelivery, Math.min),
    cpuBurst: best(r.burst, (x) => x.cpuPerDelivery, Math.min),
    share: median([...r.spread, ...r.burst].map((x) => x.cpuShare)),
    lag: Math.max(median(r.spread.map((x) => x.lagMs)), median(r.burst.map((x) => x.lagMs))),
    complete: [...r.spread, ...r.burst].every((x) => x.complete) && r.latencyComplete
  }
}

function ratioValue (metric: Metric, a: Result, b: Result): number {
  if (metric === 'heap') return a.heapPerConn / b.heapPerConn
  if (metric === 'rss') return a.rssPerConn / b.rssPerConn
  if (a.spread.length === 0 || b.spread.length === 0) return NaN
  const [sa, sb] = [summary(a), summary(b)]
  switch (metric) {
    case 'rate': return sa.rate / sb.rate
    case 'rateBurst': return sa.rateBurst / sb.rateBurst
    case 'cpu': return sb.cpu / sa.cpu
    case 'cpuBurst': return sb.cpuBurst / sa.cpuBurst
  }
}

function print (config: FanoutConfig, results: Result[], notes: { loadBefore: string, loadAfter: string, seconds: number, limit: number, clockNote: string }): void {
  const env = benchEnv()
  const measured = results.filter((r) => r.spread.length > 0)
  const bursts = config.sizes.map((n) => `${measured.find((r) => r.n === n)?.perBurst ?? '-'} at N=${int(n)}`).join(', ')
  console.log(`\n${config.title}`)
  console.log(`\ncommand: ${env}${config.command}`)
  console.log(`machine: ${machineNote()}; load average before ${notes.loadBefore}, after ${notes.loadAfter}; ulimit -n ${notes.limit}; ` +
    `${CAN_PIN ? `servers pinned to CPU ${SERVER_CPU}, clients to CPU ${CLIENT_CPU} (taskset)` : 'NOT pinned (no taskset, one CPU, or BENCH_PIN=0)'}; ` +
    `${config.clientProcs} client processes per server; ${notes.seconds.toFixed(0)} s`)
  console.log(`saturation: ${int(config.deliveries)} deliveries per run, publishing one event per event-loop turn ("1/turn") and in synchronous bursts ` +
    `(${bursts} publishes per turn, "burst"), best of ${config.rounds} interleaved rounds (highest deliveries/s, lowest CPU per delivery: other load only slows a run down); ` +
    `latency: ${config.sizes.map((n) => `${fixed(latencyRate(config, n), 0)} publishes/s at N=${int(n)}`).join(', ')} for ${config.latencyS} s, p50/p99 over every delivery; memory: after GC, per connection over the last 90% of the clients; ${notes.clockNote}\n`)
  console.log('| server | clients | deliveries/s 1/turn | deliveries/s burst | server CPU µs/delivery 1/turn | server CPU µs/delivery burst | server\'s share of its CPU | p50 ms | p99 ms | heap B/conn | RSS B/conn |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  let lag = 0
  for (const r of results) {
    if (r.spread.length === 0) {
      console.log(`| ${r.label} | ${int(r.n)} | - | - | - | - | - | - | - | ${int(r.heapPerConn)} | ${int(r.rssPerConn)} |`)
      continue
    }
    const s = summary(r)
    lag = Math.max(lag, s.lag)
    const flag = s.complete ? '' : ' (incomplete: a client missed deliveries within the time limit)'
    console.log(`| ${r.label}${flag} | ${int(r.n)} | ${int(s.rate)} | ${int(s.rateBurst)} | ${fixed(s.cpu)} | ${fixed(s.cpuBurst)} | ${fixed(s.share * 100, 0)}% | ${fixed(r.p50, 1)} | ${fixed(r.p99, 1)} | ${int(r.heapPerConn)} | ${int(r.rssPerConn)} |`)
  }
  console.log(`\nclients kept up: the last delivery came at most ${fixed(lag, 0)} ms (median of runs) after the server's last publish returned. ` +
    'Share of its CPU: server CPU time / wall time of the runs, median (below 100%: other processes of the machine took the rest).')
  const sizes = config.sizes
  console.log(`\n| ratio | ${sizes.map((n) => `N=${int(n)}`).join(' | ')} | target | met |`)
  console.log(`| --- | ${sizes.map(() => '---:').join(' | ')} | --- | --- |`)
  for (const ratio of config.ratios) {
    const values = sizes.map((n) => {
      const a = results.find((r) => r.n === n && r.kind === ratio.num)
      const b = results.find((r) => r.n === n && r.kind === ratio.den)
      return a === undefined || b === undefined ? NaN : ratioValue(ratio.metric, a, b)
    })
    if (values.every((v) => Number.isNaN(v))) continue
    const met = values.every((v) => Number.isFinite(v) && ratio.meets(v))
    console.log(`| ${ratio.label} | ${values.map((v) => fixed(v)).join(' | ')} | ${ratio.target} | ${met ? 'yes' : 'no'} |`)
  }
}

/** The BENCH_* variables set for this run, as a command prefix (the build directory the run sets itself left out). */
export function benchEnv (): string {
  return Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_') && k !== PACKAGE_DIR_ENV).map(([k, v]) => `${k}=${v} `).join('')
}

export function envList (name: string, fallback: number[]): number[] {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const values = raw.split(',').map((v) => Number(v.trim()))
  if (values.some((v) => !Number.isInteger(v) || v < 1)) {
    console.error(`${name} must be a comma list of positive integers, got ${JSON.stringify(raw)}`)
    process.exit(2)
  }
  return values
}

export function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number, got ${JSON.stringify(raw)}`)
    process.exit(2)
  }
  return value
}
