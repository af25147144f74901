import t, { type Test } from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { RedisBus, type RedisBusOptions } from '../lib/redis/bus.js'
import { RedisDedupeStore } from '../lib/redis/dedupe.js'
import { createRedisCluster, loadIORedis, whenReady } from '../lib/redis/client.js'
import { keySlot } from '../lib/redis/slot.js'
import { parseId } from '../lib/rooms/ids.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'
import { startRedisCluster, until, type RedisCluster } from './helpers/redis.js'

// The bus on a real Redis Cluster (three masters, one replica each, on loopback): rooms spread over the shards,
// sharded pub/sub per room, presence, direct messages and dedupe on the cluster, and a master killed mid-stream.
// One cluster for the whole file; each test uses its own key prefix.

const encoder: Encoder<string> = { name: 'test', encode: (ev) => ev.id }

interface TestMember extends Member<string> {
  received: RoomEvent[]
  directs: unknown[]
}

function member (registry: RoomRegistry, user: string | null = null): TestMember {
  const m: TestMember = {
    id: registry.nextMemberId(),
    user,
    transport: 'test',
    encoder,
    received: [],
    directs: [],
    deliver (_frame, event) { m.received.push(event) },
    direct (message) { m.directs.push(message) }
  }
  return m
}

let cluster: RedisCluster | null = null
let prefixes = 0


interface Instance { bus: RedisBus, registry: RoomRegistry }

async function instance (t: Test, prefix: string, options: Partial<RedisBusOptions> = {}): Promise<Instance> {
  const bus = new RedisBus({ cluster: (cluster as RedisCluster).seeds, keyPrefix: prefix, commandTimeoutMs: 1000, maxBackoffMs: 200, ...options })
  const registry = new RoomRegistry({ bus })
  t.after(() => registry.close())
  await bus.waitReady(15_000)
  return { bus, registry }
}

async function pair (t: Test, options: Partial<RedisBusOptions> = {}) {
  if (cluster === null) return null
  const prefix = `s${++prefixes}`
  return { prefix, a: await instance(t, prefix, options), b: await instance(t, prefix, options) }
}

/** `count` room names whose keys live on `count` different masters. */
async function roomsOnShards (prefix: string, count: number): Promise<string[]> {
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < count && i < 1000; i++) {
    const room = `room-${i}`
    const master = await (cluster as RedisCluster).masterOf(keySlot(`${prefix}:{${room}}:m`))
    if (!byMaster.has(master)) byMaster.set(master, room)
  }
  return [...byMaster.values()]
}

/** Subscribers of a room's shard channel, asked on the master that serves it. */
async function shardNumsub (prefix: string, room: string): Promise<number> {
  const channel = `${prefix}:{${room}}:c`
  const reply = await (cluster as RedisCluster).command(await (cluster as RedisCluster).masterOf(keySlot(channel)), ['PUBSUB', 'SHARDNUMSUB', channel])
  return Number(reply.trim().split('\r\n').at(-1)?.replace(':', ''))
}

async function joined (registry: RoomRegistry, bus: RedisBus, rooms: string[], m: Member): Promise<void> {
  for (const room of rooms) registry.join(room, m)
  await Promise.all(rooms.map(async (room) => await registry.position(room)))
  await bus.waitReady(10_000)
}

/** The tests of this file, run against one cluster (see the end of the file). */
const tests: Array<[string, (t: Test) => Promise<void>]> = []

tests.push(['rooms on three shards: events reach the other instance, and only instances with members subscribe', async (t: Test) => {
  const setup = await pair(t)
  if (setup === null) return
  const { prefix, a, b } = setup
  const [r1, r2, r3] = await roomsOnShards(prefix, 3)
  t.equal(new Set(await Promise.all([r1, r2, r3].map(async (room) => await (cluster as RedisCluster).masterOf(keySlot(`${prefix}:{${room}}:m`))))).size, 3, 'three rooms on three masters')
  const onB = member(b.registry)
  await joined(b.registry, b.bus, [r1, r2], onB)
  t.same([await shardNumsub(prefix, r1), await shardNumsub(prefix, r2), await shardNumsub(prefix, r3)], [1, 1, 0],
    'B subscribed on the shards of its rooms, nobody to the third')
  const sent = []
  for (let i = 0; i < 9; i++) sent.push(await a.registry.publish([r1, r2, r3][i % 3], 'n', i))
  await until(() => onB.received.length === 6, 5000, 'six events on B')
  for (const room of [r1, r2]) {
    t.same(onB.received.filter((ev) => ev.room === room).map((ev) => ev.id), sent.filter((_, i) => [r1, r2, r3][i % 3] === room).map((s) => s.id), `${room} in order`)
  }
  t.equal(b.bus.broker.stats.received, 6, 'B received the events of its two rooms and nothing of the third')
  t.equal(a.bus.broker.stats.received, 0, 'A, with no members, received nothing at all')
  t.ok((b.bus.core.subscriptions?.connections().length ?? 9) <= 3, 'at most one subscriber connection per master (rooms and control channels)')
  b.registry.leaveAll(onB)
  await until(async () => await shardNumsub(prefix, r1) === 0 && await shardNumsub(prefix, r2) === 0, 5000, 'B to unsubscribe')
  t.pass('unsubscribed once its last member left')
}])

tests.push(['history, positions and epochs per room on the cluster; a resume on the other instance is exact', async (t: Test) => {
  const setup = await pair(t)
  if (setup === null) return
  const { prefix, a, b } = setup
  const [r1, r2] = await roomsOnShards(prefix, 2)
  const ids = { [r1]: [] as string[], [r2]: [] as string[] }
  for (let i = 0; i < 6; i++) {
    const room = i % 2 === 0 ? r1 : r2
    ids[room].push((await a.registry.publish(room, 'n', i)).id)
  }
  t.not(parseId(ids[r1][0])?.epoch, parseId(ids[r2][0])?.epoch, 'each room has its own epoch')
  t.same(ids[r1].map((id) => parseId(id)?.offset), [1, 2, 3])
  const resumed = await b.registry.history(r1, ids[r1][0])
  t.same([resumed.recovered, resumed.events.map((ev) => ev.id)], [true, ids[r1].slice(1)])
  t.same((await b.registry.history(r2, ids[r1][0])).recovered, false, 'a position of another room is a gap')
  t.same(await b.registry.position(r2), parseId(ids[r2][2]))
}])

tests.push(['presence, the room list, direct messages and liveness work across shards', async (t: Test) => {
  const setup = await pair(t, { presenceTtlMs: 2000, heartbeatMs: 300 })
  if (setup === null) return
  const { prefix, a, b } = setup
  const [r1, r2] = await roomsOnShards(prefix, 2)
  const alice = member(a.registry, 'alice')
  const bob = member(b.registry, 'bob')
  a.registry.join(r1, alice)
  b.registry.join(r1, bob)
  b.registry.join(r2, bob)
  await until(async () => (await a.registry.presence(r1)).members === 2, 5000, 'both members of the first room')
  t.same((await b.registry.presence(r1)).users.sort(), ['alice', 'bob'])
  await until(async () => (await a.registry.list()).length === 2, 5000, 'both rooms listed')
  t.same((await a.registry.list()).sort((x, y) => x.room.localeCompare(y.room)), [{ room: r1, members: 2 }, { room: r2, members: 1 }].sort((x, y) => x.room.localeCompare(y.room)))
  await b.bus.waitReady(5000)
  t.equal(await a.registry.direct(bob.id, { sdp: 'offer' }), true, 'a direct message crosses to the other instance')
  t.same(bob.directs, [{ sdp: 'offer' }])
  t.equal(await a.registry.direct(`${b.registry.instanceId}.nobody`, 1), false)
  await until(async () => (await a.registry.liveInstances())?.size === 2, 8000, 'both instances listed as alive')
  t.same([...(await a.registry.liveInstances()) ?? []].sort(), [a.registry.instanceId, b.registry.instanceId].sort())
}])

tests.push(['the dedupe store works on a cluster client: one claim across instances, then the answer', async (t: Test) => {
  if (cluster === null) return
  const ioredis = await loadIORedis()
  // two instances: two cluster clients
  const clients = [createRedisCluster(ioredis, cluster.seeds), createRedisCluster(ioredis, cluster.seeds)]
  t.after(() => { for (const client of clients) client.disconnect() })
  await Promise.all(clients.map(async (client) => { await whenReady(client, 10_000) }))
  const [one, two] = clients.map((client) => new RedisDedupeStore({ redis: client, namespace: 'stripe', keyPrefix: 'shards' }))
  const keys = ['evt_1', 'evt_2', 'evt_3', 'evt_4', 'evt_5', 'evt_6']
  for (const key of keys) t.same(await one.claim(key, 10_000), { state: 'claimed' })
  for (const key of keys) t.same(await two.claim(key, 10_000), { state: 'pending' })
  await one.complete('evt_1', 'handled', 60_000)
  t.same(await two.wait('evt_1', 5000), { state: 'done', value: 'handled' })
  await one.release('evt_2')
  t.same(await two.claim('evt_2', 10_000), { state: 'claimed' }, 'released: claimable again')
  const slots = new Set(keys.map((key) => keySlot(`shards:stripe:${key}`)))
  t.ok(slots.size > 1, 'the keys spread over several slots')
}])

tests.push(['a subscription to one shard that drops while commands go on: the missed events are caught up when it is back', async (t: Test) => {
  const setup = await pair(t)
  if (setup === null) return
  const { prefix, a, b } = setup
  const [r1, r2] = await roomsOnShards(prefix, 2)
  const onB = member(b.registry)
  await joined(b.registry, b.bus, [r1, r2], onB)
  await a.registry.publish(r1, 'n', 'first')
  await until(() => onB.received.length === 1, 5000, 'the first event')
  const master = await (cluster as RedisCluster).masterOf(keySlot(`${prefix}:{${r1}}:c`))
  const conn = b.bus.core.subscriptions?.connections().find((c) => c.options.port === master)
  if (conn === undefined) throw new Error('no subscriber connection to the room\'s master')
  conn.disconnect()
  await until(() => b.registry.failing().includes('redis:subscriptions'), 5000, 'B to report the subscription')
  const missed = [await a.registry.publish(r1, 'n', 'missed 1'), await a.registry.publish(r1, 'n', 'missed 2')]
  await a.registry.publish(r2, 'n', 'other shard')
  await until(() => onB.received.some((ev) => ev.room === r2), 5000, 'the other shard goes on')
  await conn.connect()
  await until(() => onB.received.length === 4, 5000, 'the missed events, caught up')
  t.same(onB.received.filter((ev) => ev.room === r1).map((ev) => ev.data), ['first', 'missed 1', 'missed 2'])
  t.same(onB.received.filter((ev) => ev.room === r1).slice(1).map((ev) => ev.id), missed.map((m) => m.id))
  await until(() => b.registry.isReady(), 5000, 'ready again')
}])

tests.push(['a master killed mid-stream: its shard fails over, publishes recover, other shards go on, resume is honest', async (t: Test) => {
  const setup = await pair(t, { heartbeatMs: 200 })
  if (setup === null || cluster === null) return
  const { prefix, a, b } = setup
  const [victimRoom, otherRoom] = await roomsOnShards(prefix, 2)
  const onB = member(b.registry)
  await joined(b.registry, b.bus, [victimRoom, otherRoom], onB)
  const victim = await cluster.masterOf(keySlot(`${prefix}:{${victimRoom}}:m`))
  const node = cluster.nodes.find((n) => n.port === victim)
  if (node === undefined) throw new Error('no such node')

  const ids: string[] = []
  for (let i = 0; i < 10; i++) ids.push((await a.registry.publish(victimRoom, 'n', i)).id)
  await until(() => onB.received.length === 10, 5000, 'ten events before the kill')
  await node.stop('SIGKILL')

  // the other shard serves throughout
  const other = await a.registry.publish(otherRoom, 'n', 'during')
  await until(() => onB.received.some((ev) => ev.id === other.id), 5000, 'the other shard\'s event')
  let refused = 0
  let notReady = false
  const deadline = Date.now() + 30_000
  while (ids.length < 20 && Date.now() < deadline) {
    try {
      ids.push((await a.registry.publish(victimRoom, 'n', ids.length)).id)
    } catch (err) {
      refused++
      t.equal((err as { code?: string }).code, 'GW_BUS_UNAVAILABLE')
      notReady ||= !a.registry.isReady()
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.ok(refused > 0, `publishes to the failed shard were refused (${refused}) rather than queued`)
  t.ok(notReady, 'and the publishing instance said it was not ready meanwhile')
  t.equal(ids.length, 20, 'publishes recovered after the failover')
  t.not(await cluster.masterOf(keySlot(`${prefix}:{${victimRoom}}:m`)), victim, 'a replica took over the slot')
  await until(() => onB.received.filter((ev) => ev.room === victimRoom).length === 20, 15_000, 'B to get all twenty')
  t.same(onB.received.filter((ev) => ev.room === victimRoom).map((ev) => ev.id), ids, 'in order, once each')
  await until(() => a.registry.isReady() && b.registry.isReady(), 15_000, 'both ready again')
  const resumed = await b.registry.history(victimRoom, ids[4])
  const kept = resumed.events.map((ev) => ev.id)
  if (resumed.recovered) t.same(kept, ids.slice(5), 'the replica had every write: the resume is exact')
  else t.ok(kept.every((id) => ids.includes(id)), 'writes were lost: the resume reports a gap with what is left')

  // the killed node comes back: it rejoins as a replica of the new master, and nothing changes for the clients
  await node.start()
  await cluster.waitHealthy(30_000)
  t.notOk((await cluster.masters()).includes(victim), 'the restarted node is a replica now')
  const after = await a.registry.publish(victimRoom, 'n', 'after the restart')
  await until(() => onB.received.at(-1)?.id === after.id, 5000, 'delivered as before')
}])

t.test('on a real Redis Cluster: three masters with a replica each', async (t) => {
  cluster = await startRedisCluster(t)
  if (cluster === null) return
  for (const [name, fn] of tests) await t.test(name, fn)
})
