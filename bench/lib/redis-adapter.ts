// The Redis bus behind the harness's BenchNode interface (bench/lib/redis-node.ts): a RoomRegistry on a RedisBus,
// on one server (`url`) or a cluster (`nodes`).
import { RedisBus } from '../../lib/redis/bus.js'
import { RoomRegistry } from '../../lib/rooms/registry.js'
import type { Encoder, Member } from '../../lib/rooms/types.js'
import type { BenchNode, BenchTarget } from './redis-node.js'

const encoder: Encoder<string> = { name: 'bench', encode: (ev) => `{"op":"event","data":${ev.dataJson},"id":"${ev.id}"}` }

export async function createNode (target: BenchTarget, prefix: string): Promise<BenchNode> {
  const bus = new RedisBus({ ...(target.nodes === undefined ? { redis: target.url as string } : { cluster: target.nodes }), keyPrefix: prefix, historySize: 100 })
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
