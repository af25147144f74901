// The Redis bus behind the harness's BenchNode interface (bench/lib/redis-node.ts): a RoomRegistry on a RedisBus,
// on one server (`url`) or a cluster (`nodes`).
import { RedisBus } from '../../lib/redis/bus.js'
import { RoomRegistry } from '../../lib/rooms/registry.js'
import type { Encoder, Member } from '../../lib/rooms/types.js'
import type { BenchNode, BenchTarget } from './redis-node.js'

const encoder: Encoder<string> = { name: 'bench', encode: (ev) => `{"op":"event","data":${ev.dataJson},"id":"${ev.id}"}` }

/** BENCH_AUTOPIPELINE=1: the bus's command client with ioredis' auto-pipelining on (it ships with it off) */
const AUTOPIPELINE = process.env.BENCH_AUTOPIPELINE === '1'

function where (target: BenchTarget) {
  if (target.nodes !== undefined) return { cluster: target.nodes, ...(AUTOPIPELINE ? { clusterOptions: { enableAutoPipelining: true } } : {}) }
  const url = new URL(target.url as string)
  return { redis: AUTOPIPELINE ? { host: url.hostname, port: Number(url.port), enableAutoPipelining: true } : url.href }
}

export async function createNode (target: BenchTarget, prefix: string): Promise<BenchNode> {
  const bus = new RedisBus({ ...where(target), keyPrefix: prefix, historySize: 100 })
  const registry = new RoomRegistry({ bus })
  return {
    ready: async () => { await bus.waitReady(15_000) },
    join: (room, n, onDeliver) => {
      for (let i = 0; i < n; i++) {
        const member: Member<string> = { id: registry.nextMemberId(), user: null, transport: 'bench', encoder, deliver: () => { onDeliver() } }
        registry.join(room, member)
      }
    },
    publish: async (room, event, data) => await registry.publish(room, event, data),
    close: async () => { await registry.close() }
  }
}
