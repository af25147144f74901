// One benchmark server in its own process (pinned by the parent): `node --expose-gc --import tsx bench/lib/server-worker.ts <kind>`.
// Commands from the parent (proc.ts): start, members, mem, steady, burst, mark, cpu, snapshot, profileStart,
// profileStop, clock, exit.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { setImmediate as yieldLoop, setTimeout as sleep } from 'node:timers/promises'
import { writeHeapSnapshot } from 'node:v8'
import { nowUs, serveParent } from './proc.js'
import { SERVER_KINDS, benchData, type BenchServer, type ServerKind } from './servers.js'

const kind = process.argv[2] as ServerKind
let server: BenchServer | null = null
let cpuStart = process.cpuUsage()
let seq = 0
let profiler: Session | null = null

async function collectGarbage (): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  for (let i = 0; i < 4; i++) {
    gc()
    await sleep(20)
  }
}

function ready (): BenchServer {
  if (server === null) throw new Error('not started')
  return server
}

/** Largest number of bytes waiting in user space on any of the server's sockets. */
function backlog (s: BenchServer): number {
  let max = 0
  for (const socket of s.sockets) if (socket.writableLength > max) max = socket.writableLength
  return max
}

serveParent({
  async start () {
    const factory = SERVER_KINDS[kind]
    if (factory === undefined) throw new Error(`unknown server kind ${kind}`)
    server = await factory()
    return { port: server.port, path: server.path }
  },
  members: () => ({ members: ready().members() }),
  async mem () {
    await collectGarbage()
    const m = process.memoryUsage()
    return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers }
  },
  /** `count` publishes at `rate` per second (each scheduled against the start, so a late one does not shift the rest) */
  async steady ({ rate, count }) {
    const s = ready()
    const start = nowUs()
    const interval = 1e6 / rate
    for (let i = 0; i < count; i++) {
      const due = start + i * interval
      const wait = due - nowUs()
      if (wait > 1000) await sleep(Math.floor(wait / 1000))
      s.publish(benchData(nowUs(), ++seq))
    }
    return { published: count }
  },
  /**
   * Back-to-back publishing: `publishes` events, `perTurn` of them in one synchronous go, then a turn of the event
   * loop (setImmediate) before the next; before each go it waits while any socket has more than `highWater` bytes
   * queued in user space (so no client falls behind without bound). The whole run stops after `maxMs`.
   */
  async burst ({ publishes, perTurn, highWater, maxMs }) {
    const s = ready()
    cpuStart = process.cpuUsage()
    const t0 = nowUs()
    const deadline = t0 + maxMs * 1000
    let published = 0
    let stalls = 0
    while (published < publishes && nowUs() < deadline) {
      if (backlog(s) > highWater) {
        stalls++
        await sleep(1)
        continue
      }
      const end = Math.min(publishes, published + perTurn)
      while (published < end) {
        s.publish(benchData(nowUs(), ++seq))
        published++
      }
      await yieldLoop()
    }
    return { t0, t1: nowUs(), published, stalls }
  },
  /** starts the CPU clock `cpu` reads (a burst starts it too) */
  mark: () => {
    cpuStart = process.cpuUsage()
    return {}
  },
  /** a heap snapshot after GC, written to `file` */
  async snapshot ({ file }) {
    await collectGarbage()
    return { file: writeHeapSnapshot(file as string) }
  },
  /** starts V8's sampling CPU profiler (`intervalUs` between samples) */
  async profileStart ({ intervalUs }) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: intervalUs ?? 100 })
    await profiler.post('Profiler.start')
    return {}
  },
  /** stops the profiler and writes the profile (`.cpuprofile`, for Chrome DevTools or bench/lib/profile.ts) to `file` */
  async profileStop ({ file }) {
    if (profiler === null) throw new Error('no profile running')
    const { profile } = await profiler.post('Profiler.stop')
    profiler.disconnect()
    profiler = null
    writeFileSync(file as string, JSON.stringify(profile))
    return { file }
  },
  /** CPU time (user + system, µs) since the last burst started or `mark` */
  cpu: () => {
    const d = process.cpuUsage(cpuStart)
    return { us: d.user + d.system }
  }
})
