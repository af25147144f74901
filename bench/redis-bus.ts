// Two-instance micro-benchmark of the Redis bus, registry level: instance A publishes, members (in memory, one shared
// encoder) sit on instance B or on both; compared with one instance on the in-memory bus in the same run.
// Starts its own redis-server on a free loopback port (pinned to the last CPU with taskset when available).
// Run: node --import tsx bench/redis-bus.ts   (env: BENCH_EVENTS, BENCH_MEMBERS, BENCH_WINDOW, BENCH_MAX_S, BENCH_PIN=0)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { RedisBus } from '../lib/redis/bus.js'
import type { Encoder, Member } from '../lib/rooms/types.js'

const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000)
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 1000)
/** publishes in flight at once on A (a publish awaits its Redis round trip) */
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256)
/** every run stops publishing after this many seconds and waits at most as long again for deliveries */
const MAX_S = Number(process.env.BENCH_MAX_S ?? 20)
const PIN = process.env.BENCH_PIN !== '0' && spawnSync('sh', ['-c', 'command -v taskset']).status === 0 && cpus().length > 1
const payload = { title: 'New Message!', body: 'x'.repeat(120), n: 0 }

let bytes = 0
const encoder: Encoder<string> = {
  name: 'bench-json',
  encode: (ev) => `{"op":"event","room":${JSON.stringify(ev.room)},"event":${JSON.stringify(ev.event)},"data":${ev.dataJson},"id":"${ev.id}"}`
}

interface Counter { count: number, target: number, done: () => void }

function addMembers (registry: RoomRegistry, n: number, counter: Counter): void {
  for (let i = 0; i < n; i++) {
    const member: Member<string> = {
      id: registry.nextMemberId(),
      user: null,
      transport: 'bench',
      encoder,
      deliver: (s) => {
        bytes = (bytes + s.length) | 0
        if (++counter.count === counter.target) counter.done()
      }
    }
    registry.join('room', member)
  }
}

interface Row { name: string, events: number, deliveries: number, seconds: number }

function memoryRun (): Row {
  const registry = new RoomRegistry({ historySize: 100 })
  const counter: Counter = { count: 0, target: -1, done: () => {} }
  addMembers(registry, MEMBERS, counter)
  const start = process.hrtime.bigint()
  const deadline = Date.now() + MAX_S * 1000
  let events = 0
  while (events < EVENTS && Date.now() < deadline) {
    payload.n = events++
    registry.publish('room', 'notification', payload)
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  return { name: 'memory bus, 1 instance', events, deliveries: counter.count, seconds }
}

async function redisRun (url: string, name: string, onA: number, onB: number): Promise<Row> {
  const prefix = `bench${Math.random().toString(36).slice(2, 8)}`
  const busA = new RedisBus({ redis: url, keyPrefix: prefix, historySize: 100 })
  const busB = new RedisBus({ redis: url, keyPrefix: prefix, historySize: 100 })
  const a = new RoomRegistry({ bus: busA })
  const b = new RoomRegistry({ bus: busB })
  try {
    await Promise.all([busA.waitReady(10_000), busB.waitReady(10_000)])
    let finished = () => {}
    const allDelivered = new Promise<void>((resolve) => { finished = resolve })
    const counter: Counter = { count: 0, target: EVENTS * (onA + onB), done: () => { finished() } }
    addMembers(a, onA, counter)
    addMembers(b, onB, counter)
    // warm-up: scripts loaded, connections hot
    for (let i = 0; i < 50; i++) await a.publish('warmup', 'n', i)
    const start = process.hrtime.bigint()
    const deadline = Date.now() + MAX_S * 1000
    let next = 0
    const worker = async () => {
      while (next < EVENTS && Date.now() < deadline) {
        const n = next++
        await a.publish('room', 'notification', { ...payload, n })
      }
    }
    await Promise.all(Array.from({ length: Math.min(WINDOW, EVENTS) }, worker))
    const published = next
    counter.target = published * (onA + onB)
    if (counter.count >= counter.target) finished()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([allDelivered, new Promise((resolve) => { timer = setTimeout(resolve, MAX_S * 1000) })])
    clearTimeout(timer)
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    return { name, events: published, deliveries: counter.count, seconds }
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}

async function startRedis (): Promise<{ url: string, child: ChildProcess, dir: string }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no']
  const cpu = String(cpus().length - 1)
  const child = PIN
    ? spawn('taskset', ['-c', cpu, 'redis-server', ...args], { stdio: 'ignore' })
    : spawn('redis-server', args, { stdio: 'ignore' })
  child.once('error', (err) => {
    console.error(`cannot start redis-server (${err.message}); apt-get install redis-server`)
    process.exit(1)
  })
  const url = `redis://127.0.0.1:${port}`
  const probe = new RedisBus({ redis: url })
  try {
    await probe.waitReady(5000)
  } finally {
    await probe.close()
  }
  return { url, child, dir }
}

function table (rows: Row[]): void {
  const base = rows[0].deliveries / rows[0].seconds
  console.log('| run | events | deliveries | seconds | events/s | deliveries/s | vs memory |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const row of rows) {
    const rate = row.deliveries / row.seconds
    console.log(`| ${row.name} | ${row.events} | ${row.deliveries} | ${row.seconds.toFixed(2)} | ${Math.round(row.events / row.seconds)} | ${Math.round(rate)} | ${(rate / base).toFixed(2)} |`)
  }
}

const redis = await startRedis()
const stop = () => {
  redis.child.kill('SIGTERM')
  rmSync(redis.dir, { recursive: true, force: true })
}
process.once('exit', stop)
try {
  memoryRun() // warm-up
  const rows: Row[] = [memoryRun()]
  rows.push(await redisRun(redis.url, 'redis bus: A publishes, members on B', 0, MEMBERS))
  rows.push(await redisRun(redis.url, 'redis bus: A publishes, members half on A, half on B', MEMBERS / 2, MEMBERS / 2))
  console.log(`\nnode --import tsx bench/redis-bus.ts  (BENCH_EVENTS=${EVENTS} BENCH_MEMBERS=${MEMBERS} BENCH_WINDOW=${WINDOW}; ` +
    `${cpus().length} CPUs, redis-server ${PIN ? `pinned to CPU ${cpus().length - 1}` : 'not pinned'}; 200-byte JSON, one room)\n`)
  table(rows)
} finally {
  stop()
}
