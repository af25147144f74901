// Two-instance benchmark, process level: real server.ts processes (`node --import tsx server.ts`, configured by env
// only), real ws clients in a client process per instance, publishes through the HTTP API of instance A. Compares
// deliveries per second of
//   1. one instance on the in-memory bus (no REDIS_URL),
//   2. one instance on the Redis bus,
//   3. two instances on the Redis bus, the clients split over both, every publish through A,
// in one run. Servers (and redis-server) are pinned to CPU 0, client processes to CPU 1 when taskset exists: on a
// 2-CPU machine both instances share one CPU, so run 3 shows the cost of the Redis hop and the split, not the gain
// of a second machine.
// Rounds interleave the three setups; the table gives medians of deliveries/s and of the server side's CPU time per
// delivery (the server.ts processes plus redis-server), which the machine's other load disturbs less than wall time.
// Run: node --import tsx bench/redis-instances.ts
// env: BENCH_CLIENTS=1000 (total)  BENCH_EVENTS=300  BENCH_WINDOW=8 (publishes in flight)  BENCH_ROUNDS=5
//      BENCH_MAX_S=60 (bound per phase)  BENCH_PIN=0 (no taskset)
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { cpus } from 'node:os'
import { CAN_PIN, nowUs, startChild, stopChild, type Child } from './lib/proc.js'
import { ROOM } from './lib/servers.js'
import { startInstance, type Instance } from '../test/helpers/instance.js'
import { startRedis } from '../test/helpers/redis.js'

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000)
const EVENTS = Number(process.env.BENCH_EVENTS ?? 300)
const WINDOW = Number(process.env.BENCH_WINDOW ?? 8)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const MAX_S = Number(process.env.BENCH_MAX_S ?? 60)
const SERVER_CPU = 0
const CLIENT_CPU = 1
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100)

/** CPU time (user + system) a process has used so far, in µs (from /proc; 0 where there is no /proc). */
function cpuUs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_US
  } catch {
    return 0
  }
}
const API_KEY = 'bench-key-0123456789abcdef'
const EVENT_DATA = { title: 'New Message!', body: 'x'.repeat(120) }

/** the helpers' teardown, collected here and run at the end (they are written for tap's `t.after`) */
const teardown: Array<() => unknown> = []
const scope = {
  after: (fn: () => unknown) => { teardown.push(fn) },
  skip: () => { throw new Error('redis-server is not installed (apt-get install redis-server)') },
  fail: (message: string) => { throw new Error(message) }
}

const agent = new Agent({ keepAlive: true, maxSockets: WINDOW })

function publish (instance: Instance, n: number): Promise<void> {
  const body = JSON.stringify({ event: 'tick', data: { ...EVENT_DATA, n } })
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: instance.port,
      method: 'POST',
      path: `/api/rooms/${ROOM}/events`,
      agent,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    }, (res) => {
      res.resume()
      res.on('end', () => {
        if (res.statusCode === 202) resolve()
        else reject(new Error(`publish answered ${res.statusCode}`))
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Publishes `count` events through `instance`, `WINDOW` at a time. */
async function publishAll (instance: Instance, count: number): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < count) {
      next++
      await publish(instance, next)
    }
  }
  await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, lane))
}

/**
 * One phase: every client expects `perConn` events. Resolves the deliveries, the time from the first publish to the
 * last delivery, and the CPU time the server side (`serverPids`: the instances and redis-server) spent meanwhile.
 */
async function phase (publisher: Instance, clients: Child[], perConn: number, serverPids: number[] = []): Promise<{ deliveries: number, seconds: number, serverCpuUs: number }> {
  await Promise.all(clients.map(async (client) => await client.call('arm', { perConn, latency: false })))
  const cpuBefore = serverPids.reduce((sum, pid) => sum + cpuUs(pid), 0)
  const start = nowUs()
  await publishAll(publisher, perConn)
  const results = await Promise.all(clients.map(async (client) => {
    try {
      return await client.call<{ count: number, lastUs: number }>('wait', {}, MAX_S * 1000)
    } catch {
      return await client.call<{ count: number, lastUs: number }>('report')
    }
  }))
  const serverCpuUs = serverPids.reduce((sum, pid) => sum + cpuUs(pid), 0) - cpuBefore
  const deliveries = results.reduce((sum, r) => sum + r.count, 0)
  const last = Math.max(...results.map((r) => r.lastUs))
  return { deliveries, seconds: (last - start) / 1e6, serverCpuUs }
}

interface Setup {
  name: string
  instances: Instance[]
  clients: Child[]
  /** the instances' pids, and redis-server's for the Redis setups */
  serverPids: number[]
  rates: number[]
  /** server-side CPU µs per delivery, per round */
  costs: number[]
  deliveries: number[]
}

/** Starts `count` instances (Redis bus when `redisUrl` is given, their own key prefix) and a client process per instance. */
async function setUp (name: string, redisUrl: string | null, count: number, redisPid: number | null): Promise<Setup> {
  const env: Record<string, string> = {
    GATEWAYS: 'ws,external',
    // info: the helper reads the listening URL from the log (request lines cost little next to the fan-out)
    LOG_LEVEL: 'info',
    EXTERNAL_API_KEYS: `bench=${API_KEY}`,
    EXTERNAL_RATE_MAX: '1000000',
    WS_MAX_CONN_PER_IP: '1000000',
    ...(redisUrl === null ? {} : { REDIS_URL: redisUrl, REDIS_PREFIX: `bench${Math.random().toString(36).slice(2, 8)}` })
  }
  const setup: Setup = { name, instances: [], clients: [], serverPids: [], rates: [], costs: [], deliveries: [] }
  for (let i = 0; i < count; i++) {
    const instance = await startInstance(scope, env, { name: `${name} #${i + 1}`, cpu: SERVER_CPU, startTimeoutMs: 60_000 })
    setup.instances.push(instance)
    await instance.waitReady(30_000)
    setup.clients.push(startChild(`clients of ${instance.name}`, 'bench/lib/client-worker.ts', { cpu: CLIENT_CPU, args: ['ws', String(instance.port), '/ws'] }))
  }
  setup.serverPids = setup.instances.map((instance) => instance.pid)
  if (redisUrl !== null && redisPid !== null) setup.serverPids.push(redisPid)
  const shares = setup.instances.map((_, i) => Math.floor(CLIENTS / count) + (i < CLIENTS % count ? 1 : 0))
  await Promise.all(setup.clients.map(async (client, i) => await client.call('connect', { count: shares[i], concurrency: 50 }, 180_000)))
  await phase(setup.instances[0], setup.clients, Math.min(50, EVENTS)) // warm-up: JIT, connections, scripts
  return setup
}

async function tearDown (setup: Setup): Promise<void> {
  await Promise.all(setup.clients.map(async (client) => {
    await client.call('close').catch(() => {})
    await stopChild(client)
  }))
  await Promise.all(setup.instances.map(async (instance) => { await instance.stop() }))
}

function median (values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const setups: Setup[] = []
try {
  const redis = await startRedis(scope)
  if (redis === null) throw new Error('redis-server is not installed')
  // redis-server names itself `redis-server 127.0.0.1:<port>` (the helper runs it under a shell watchdog)
  const found = execFileSync('sh', ['-c', `pgrep -f 'redis-server 127.0.0.1:${redis.port}' || true`], { encoding: 'utf8' }).trim().split('\n')[0]
  const redisPid = found === '' ? null : Number(found)
  setups.push(await setUp('1 instance, memory bus', null, 1, redisPid))
  setups.push(await setUp('1 instance, Redis bus', redis.url, 1, redisPid))
  setups.push(await setUp('2 instances, Redis bus (clients split, publishes through A)', redis.url, 2, redisPid))
  // rounds interleave the setups (all of them stay connected, idle ones cost next to nothing), so a change in the
  // machine's load during the run hits every setup alike
  for (let round = 0; round < ROUNDS; round++) {
    for (const setup of setups) {
      const { deliveries, seconds, serverCpuUs } = await phase(setup.instances[0], setup.clients, EVENTS, setup.serverPids)
      setup.rates.push(deliveries / seconds)
      setup.costs.push(serverCpuUs / deliveries)
      setup.deliveries.push(deliveries)
      process.stderr.write(`round ${round + 1} ${setup.name}: ${Math.round(deliveries / seconds)} deliveries/s, ` +
        `${(serverCpuUs / deliveries).toFixed(2)} µs server CPU per delivery\n`)
    }
  }
  console.log(`\nnode --import tsx bench/redis-instances.ts  (BENCH_CLIENTS=${CLIENTS} BENCH_EVENTS=${EVENTS} BENCH_WINDOW=${WINDOW} ` +
    `BENCH_ROUNDS=${ROUNDS}; ${cpus().length} CPUs, ${CAN_PIN ? `server.ts processes pinned to CPU ${SERVER_CPU}, clients to CPU ${CLIENT_CPU}` : 'not pinned'}; ` +
    'ws clients in one room, ~200-byte events published through POST /api/rooms/:room/events; median of the rounds)\n')
  console.log('| run | instances | deliveries/s (median) | min | max | vs 1 instance, memory | server CPU µs/delivery (median) | vs 1 instance, memory |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  const base = median(setups[0].rates)
  const baseCost = median(setups[0].costs)
  for (const setup of setups) {
    const rate = median(setup.rates)
    const cost = median(setup.costs)
    console.log(`| ${setup.name} | ${setup.instances.length} | ${Math.round(rate)} | ${Math.round(Math.min(...setup.rates))} | ` +
      `${Math.round(Math.max(...setup.rates))} | ${(rate / base).toFixed(2)} | ${cost.toFixed(2)} | ${(cost / baseCost).toFixed(2)} |`)
  }
  console.log(`\n${EVENTS * CLIENTS} deliveries per round; server CPU = the server.ts processes and redis-server (Redis setups), from /proc.`)
  const short = setups.filter((setup) => setup.deliveries.some((d) => d !== EVENTS * CLIENTS))
  if (short.length > 0) {
    console.log(`\nincomplete rounds (deliveries short of ${EVENTS * CLIENTS}): ${short.map((setup) => `${setup.name}: ${setup.deliveries.join(', ')}`).join('; ')}`)
    process.exitCode = 1
  }
} finally {
  agent.destroy()
  for (const setup of setups) await tearDown(setup)
  for (const fn of teardown.reverse()) await fn()
}
