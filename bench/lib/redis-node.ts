// One instance of a deployment in a benchmark process of its own (see bench/redis-scale.ts): a room registry on the
// Redis broker, built by an adapter module (BENCH_ADAPTER, default bench/lib/redis-adapter.ts) so the same harness
// measured the previous design too. Commands from the parent: members, publish, bare, cpu.
import { pathToFileURL } from 'node:url'
import { Cluster, Redis } from 'ioredis'
import { ROOT, serveParent } from './proc.js'

export interface BenchTarget { url?: string, nodes?: string[] }

export interface BenchNode {
  /** resolves once the node can publish and receive */
  ready (): Promise<void>
  /** adds `n` members to `room`, each calling `onDeliver` per event */
  join (room: string, n: number, onDeliver: () => void): void
  publish (room: string, event: string, data: unknown): Promise<unknown>
  close (): Promise<void>
}

export type CreateNode = (target: BenchTarget, prefix: string) => Promise<BenchNode>

const target = JSON.parse(process.argv[2]) as BenchTarget
const prefix = process.argv[3]
const adapter = process.env.BENCH_ADAPTER ?? 'bench/lib/redis-adapter.ts'
const started = (async () => {
  const { createNode } = await import(pathToFileURL(`${ROOT}${adapter}`).href) as { createNode: CreateNode }
  const created = await createNode(target, prefix)
  await created.ready()
  return created
})()
let node: BenchNode

let delivered = 0
const data = { title: 'New Message!', body: 'x'.repeat(150), n: 0 }

function cpuUs (): number {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** at most this long per loop (BENCH_LOOP_S): a busy machine gets fewer events, not a hung run */
const LOOP_MS = Number(process.env.BENCH_LOOP_S ?? 10) * 1000

/** `count` calls of `run` (fewer if LOOP_MS passes), `window` in flight; returns the wall time and this process's CPU time. */
async function loop (count: number, window: number, run: (n: number) => Promise<unknown>): Promise<{ events: number, seconds: number, cpuUs: number }> {
  const cpu0 = cpuUs()
  const t0 = process.hrtime.bigint()
  const deadline = Date.now() + LOOP_MS
  let next = 0
  const lane = async () => {
    while (next < count && Date.now() < deadline) await run(next++)
  }
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane))
  return { events: next, seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpuUs: cpuUs() - cpu0 }
}

let bare: Redis | Cluster | null = null

serveParent({
  /** the parent's first call: resolves once the node is connected */
  start: async () => {
    node = await started
    return {}
  },
  members: (msg) => {
    node.join(msg.room as string, msg.n as number, () => { delivered++ })
    return {}
  },
  publish: async (msg) => await loop(msg.count as number, msg.window as number, async (n) => {
    data.n = n
    return await node.publish(msg.room as string, 'notification', data)
  }),
  /** the floor: ioredis PUBLISH (SPUBLISH on a cluster) of a message of the same size, nobody subscribed */
  bare: async (msg) => {
    if (bare === null) {
      bare = target.nodes === undefined
        ? new Redis(target.url as string)
        : new Cluster(target.nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) })))
      await bare.ping()
    }
    const client = bare
    const payload = JSON.stringify({ room: 'bench', event: 'notification', data })
    return await loop(msg.count as number, msg.window as number, async (n) => {
      const channel = `bare:{r${n % 64}}`
      return client instanceof Cluster ? await client.spublish(channel, payload) : await client.publish(channel, payload)
    })
  },
  cpu: () => ({ cpuUs: cpuUs(), delivered }),
  close: async () => {
    await node.close()
    bare?.disconnect()
    return {}
  }
})
