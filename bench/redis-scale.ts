// Per-event cost of the Redis broker, process level: instance A publishes to a room it has no member in, instance B
// has members only in ANOTHER room, each a process of its own (bench/lib/redis-node.ts), next to a bare ioredis
// PUBLISH (SPUBLISH on a cluster) loop from the same process A in the same run. For 1, 16 and 256 publishes in
// flight it reports publishes/s (and the ratio to the bare loop), the CPU A spends per publish, the CPU Redis spends
// per publish (INFO cpu of every master, and commandstats' usec_per_call of the publish script), and the CPU B spends
// per event of the room it has no member in (its idle rate subtracted).
// Node processes are pinned to CPU 0, redis-server to CPU 1 (taskset, when there are two CPUs or more).
// Run: node --import tsx bench/redis-scale.ts
// env: BENCH_TARGETS=standalone,cluster  BENCH_ROUNDS=3  BENCH_EVENTS=20000 (per window; a tenth with 1 in flight)
//      BENCH_LOOP_S=10 (each loop stops issuing after this long)
//      BENCH_ADAPTER=bench/lib/redis-adapter.ts  BENCH_AUTOPIPELINE=1 (ioredis auto-pipelining on)  BENCH_PIN=0 (no taskset)
import { cpus } from 'node:os'
import { CAN_PIN, startChild, stopChild, type Child } from './lib/proc.js'
import { startRedis, startRedisCluster, rawCommand } from '../test/helpers/redis.js'

const TARGETS = (process.env.BENCH_TARGETS ?? 'standalone,cluster').split(',')
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000)
const WINDOWS = [1, 16, 256]
const NODE_CPU = 0
const REDIS_CPU = cpus().length - 1

const teardown: Array<() => unknown> = []
const scope = {
  after: (fn: () => unknown) => { teardown.push(fn) },
  skip: () => { throw new Error('redis-server is not installed (apt-get install redis-server)') },
  fail: (message: string) => { throw new Error(message) }
}

interface LoopResult { events: number, seconds: number, cpuUs: number }
interface Sample { bareRate: number, rate: number, aUs: number, bareUs: number, redisUs: number, scriptUs: number, bUs: number }

/** used_cpu_user + used_cpu_sys of the node on `port`, µs */
async function redisCpuUs (port: number): Promise<number> {
  const info = await rawCommand(port, ['INFO', 'cpu'])
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6
}

/** usec_per_call of the scripts (evalsha, fcall) since the last CONFIG RESETSTAT, averaged over `ports` by calls */
async function scriptUsPerCall (ports: number[]): Promise<number> {
  let calls = 0
  let usec = 0
  for (const port of ports) {
    const info = await rawCommand(port, ['INFO', 'commandstats'])
    for (const match of info.matchAll(/cmdstat_(evalsha|eval|fcall):calls=(\d+),usec=(\d+)/g)) {
      calls += Number(match[2])
      usec += Number(match[3])
    }
  }
  return calls === 0 ? 0 : usec / calls
}

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function measure (name: string, target: { url?: string, nodes?: string[] }, masters: number[]): Promise<void> {
  const prefix = `bench${Math.random().toString(36).slice(2, 8)}`
  const args = [JSON.stringify(target), prefix]
  const a = startChild('A', 'bench/lib/redis-node.ts', { cpu: NODE_CPU, args })
  const b = startChild('B', 'bench/lib/redis-node.ts', { cpu: NODE_CPU, args })
  const nodes: Child[] = [a, b]
  try {
    await Promise.all(nodes.map(async (n) => await n.call('start', {}, 60_000)))
    await b.call('members', { room: 'elsewhere', n: 10 })
    await a.call('publish', { room: 'elsewhere', count: 200, window: 16 }, 120_000)
    await a.call('publish', { room: 'bench', count: 2000, window: 16 }, 120_000) // warm-up: JIT, scripts loaded
    await a.call('bare', { count: 2000, window: 16 }, 120_000)
    const samples = new Map<number, Sample[]>(WINDOWS.map((w) => [w, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const window of WINDOWS) {
        const count = window === 1 ? Math.max(500, Math.floor(EVENTS / 10)) : EVENTS
        const bare = await a.call<LoopResult>('bare', { count, window }, 120_000)
        // B's idle rate (heartbeats, timers), to subtract
        const idle0 = (await b.call<{ cpuUs: number }>('cpu')).cpuUs
        const idleT0 = process.hrtime.bigint()
        await new Promise((resolve) => setTimeout(resolve, 500))
        const idleRate = ((await b.call<{ cpuUs: number }>('cpu')).cpuUs - idle0) / (Number(process.hrtime.bigint() - idleT0) / 1e9)
        for (const port of masters) await rawCommand(port, ['CONFIG', 'RESETSTAT'])
        const redis0 = (await Promise.all(masters.map(redisCpuUs))).reduce((x, y) => x + y, 0)
        const b0 = (await b.call<{ cpuUs: number, delivered: number }>('cpu'))
        const ours = await a.call<LoopResult>('publish', { room: 'bench', count, window }, 120_000)
        const b1 = (await b.call<{ cpuUs: number, delivered: number }>('cpu'))
        const redis1 = (await Promise.all(masters.map(redisCpuUs))).reduce((x, y) => x + y, 0)
        const sample: Sample = {
          bareRate: bare.events / bare.seconds,
          rate: ours.events / ours.seconds,
          aUs: ours.cpuUs / ours.events,
          bareUs: bare.cpuUs / bare.events,
          redisUs: (redis1 - redis0) / ours.events,
          scriptUs: await scriptUsPerCall(masters),
          bUs: Math.max(0, (b1.cpuUs - b0.cpuUs) - idleRate * ours.seconds) / ours.events
        }
        if (b1.delivered !== b0.delivered) throw new Error('B delivered events of a room it has no member in')
        samples.get(window)?.push(sample)
        process.stderr.write(`${name} round ${round + 1}, ${window} in flight: ${Math.round(sample.rate)}/s (bare ${Math.round(sample.bareRate)}/s), ` +
          `A ${sample.aUs.toFixed(1)} µs, Redis ${sample.redisUs.toFixed(1)} µs (script ${sample.scriptUs.toFixed(1)}), B ${sample.bUs.toFixed(2)} µs per event\n`)
      }
    }
    console.log(`\n### ${name}\n`)
    console.log('| in flight | publishes/s | bare PUBLISH/s | ratio | A CPU µs/publish | bare µs/publish | Redis CPU µs/publish | script usec_per_call | B CPU µs/event (no member) |')
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const [window, list] of samples) {
      const pick = (key: keyof Sample) => list.map((s) => s[key])
      const range = (key: keyof Sample, digits: number) => `${median(pick(key)).toFixed(digits)} (${Math.min(...pick(key)).toFixed(digits)}-${Math.max(...pick(key)).toFixed(digits)})`
      const ratios = list.map((s) => s.rate / s.bareRate)
      console.log(`| ${window} | ${range('rate', 0)} | ${range('bareRate', 0)} | ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}) | ` +
        `${range('aUs', 1)} | ${range('bareUs', 1)} | ${range('redisUs', 1)} | ${range('scriptUs', 1)} | ${range('bUs', 2)} |`)
    }
  } finally {
    for (const n of nodes) {
      await n.call('close', {}, 5000).catch(() => {})
      await stopChild(n)
    }
  }
}

try {
  console.log(`node --import tsx bench/redis-scale.ts  (BENCH_ROUNDS=${ROUNDS} BENCH_EVENTS=${EVENTS}${process.env.BENCH_AUTOPIPELINE === '1' ? ' BENCH_AUTOPIPELINE=1' : ''}; ${cpus().length} CPUs, ` +
    `${CAN_PIN ? `node processes pinned to CPU ${NODE_CPU}, redis-server to CPU ${REDIS_CPU}` : 'not pinned'}; ~200-byte JSON; median (min-max) of the rounds)`)
  for (const target of TARGETS) {
    if (target === 'standalone') {
      const redis = await startRedis(scope, { cpu: CAN_PIN ? REDIS_CPU : undefined })
      if (redis === null) throw new Error('redis-server is not installed')
      await measure('one redis-server', { url: redis.url }, [redis.port])
    } else if (target === 'cluster') {
      const cluster = await startRedisCluster(scope, { cpu: CAN_PIN ? REDIS_CPU : undefined })
      if (cluster === null) throw new Error('redis-server is not installed')
      await measure('Redis Cluster, 3 masters + 3 replicas', { nodes: cluster.seeds }, await cluster.masters())
    } else {
      throw new Error(`unknown target ${target} (standalone, cluster)`)
    }
  }
} finally {
  for (const fn of teardown.reverse()) await fn()
}
