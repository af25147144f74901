import t from 'tap'
import { keySlot } from '../lib/redis/slot.js'
import { startRedisCluster, until, type RedisCluster } from './helpers/redis.js'
import { connectRtc, connectWs, joinRoom, openSse, poll, roomsApi, signToken, startInstances } from './helpers/instance.js'
import { WEBHOOK_SECRET, checkoutSession, eventPayload, sign } from './helpers/fake-stripe.js'

// Three server.ts processes on a real Redis Cluster (three masters with a replica each), configured only through
// the environment (REDIS_CLUSTER_NODES), behind an imagined load balancer. Every client talks real HTTP, SSE and
// WebSocket; rooms are chosen to live on different shards.

const JWT_SECRET = 'shards-test-secret-that-is-long-enough-for-hs256'
const API_KEY = 'ops-shards-0123456789abcdef'
const auth = { authorization: `Bearer ${API_KEY}` }
const { publish, presence } = roomsApi(auth)
const PREFIX = 'gw'



/** The position of the stream's `index`-th room in a stream id. */
function entryOf (streamId: string | undefined, index: number): string | undefined {
  return streamId?.split('~')[index]
}

/** `count` public room names, with `tag` in them, whose keys live on `count` different masters. */
async function roomsOnShards (cluster: RedisCluster, tag: string, count: number): Promise<string[]> {
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < count && i < 1000; i++) {
    const room = `public:${tag}-${i}`
    const master = await cluster.masterOf(keySlot(`${PREFIX}:{${room}}:m`))
    if (!byMaster.has(master)) byMaster.set(master, room)
  }
  return [...byMaster.values()]
}

async function shardNumsub (cluster: RedisCluster, room: string): Promise<number> {
  const channel = `${PREFIX}:{${room}}:c`
  const reply = await cluster.command(await cluster.masterOf(keySlot(channel)), ['PUBSUB', 'SHARDNUMSUB', channel])
  return Number(reply.trim().split('\r\n').at(-1)?.replace(':', ''))
}


// a cluster, three server.ts processes and a failover take longer than the default file timeout on a busy machine
t.setTimeout(180_000)

t.test('three server.ts instances on a Redis Cluster behave as one', async (t) => {
  const cluster = await startRedisCluster(t)
  if (cluster === null) return
  const [a, b, c] = await startInstances(t, 3, {
    GATEWAYS: 'ws,sse,rtc,external,stripe',
    REDIS_CLUSTER_NODES: cluster.seeds.join(','),
    AUTH_JWT_SECRET: JWT_SECRET,
    EXTERNAL_API_KEYS: `ops=${API_KEY}`,
    CLIENT_PUBLISH_ROOMS: 'public:chat*',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    REDIS_PRESENCE_TTL_MS: '3000'
  })
  await Promise.all([a, b, c].map(async (instance) => { await instance.waitReady(30_000) }))

  t.test('events reach ws and SSE members on the other instances; only instances with members subscribe', async (t) => {
    const [room, quiet] = await roomsOnShards(cluster, 'news', 2)
    const ws = await connectWs(t, b, await signToken(JWT_SECRET, 'bob'))
    await joinRoom(ws, room)
    const sse = await openSse(t, c.port, `/sse?room=${room}`)
    t.equal(sse.status, 200)
    // the SSE stream is open once the room's position is read; its SSUBSCRIBE may still be on its way
    await until(async () => await shardNumsub(cluster, room) >= 2, 10_000, 'B and C to subscribe')
    t.equal(await shardNumsub(cluster, room), 2, 'B and C subscribed to the room\'s shard channel; A did not')
    t.equal(await shardNumsub(cluster, quiet), 0, 'nobody to a room without members')
    const sent = await publish(a, room, 'notification', { title: 'New Message!' })
    t.equal(sent.delivered, 0, 'no member on A')
    t.same(await ws.until((f) => f.op === 'event'), { op: 'event', room, event: 'notification', data: { title: 'New Message!' }, id: sent.id })
    const event = await sse.next()
    t.same({ id: event.id, event: event.event, data: event.data }, { id: sent.id, event: 'notification', data: { room, data: { title: 'New Message!' } } })
    await publish(a, quiet, 'n', 1)
    const after = await publish(c, room, 'after', 2)
    t.equal((await ws.until((f) => f.op === 'event')).id, after.id, 'nothing of the quiet room came in between')
  })

  t.test('a ws client publishes on A; members on B and C get it with the acked id', async (t) => {
    const [room] = await roomsOnShards(cluster, 'chat', 1)
    const sender = await connectWs(t, a, await signToken(JWT_SECRET, 'alice'))
    await joinRoom(sender, room)
    const others = [await connectWs(t, b), await connectWs(t, c)]
    for (const ws of others) await joinRoom(ws, room)
    sender.send({ op: 'publish', room, event: 'msg', data: { text: 'hi' }, ref: 'p1' })
    const ack = await sender.until((f) => f.ref === 'p1')
    t.match(ack, { op: 'ack', ref: 'p1', id: String })
    t.equal(sender.all.find((f) => f.op === 'event')?.id, ack.id, 'the publisher, a member, got its own event before the ack')
    for (const ws of others) t.same(await ws.until((f) => f.op === 'event'), { op: 'event', room, event: 'msg', data: { text: 'hi' }, id: ack.id })
  })

  t.test('an SSE stream over rooms on two shards, resumed on another instance, gets exactly what it missed', async (t) => {
    const [r1, r2] = await roomsOnShards(cluster, 'feed', 2)
    const path = `/sse?room=${r1}&room=${r2}`
    const first = await openSse(t, a.port, path)
    const seen = [await publish(b, r1, 'e1', 1), await publish(c, r2, 'e2', 2)]
    await first.next()
    await first.next()
    const lastEventId = first.events[first.events.length - 1].id as string
    t.same([entryOf(lastEventId, 0), entryOf(lastEventId, 1)], seen.map((s) => s.id), 'the last id holds both rooms\' positions')
    first.close()
    await first.ended

    const missed = [await publish(b, r1, 'e3', 3), await publish(a, r2, 'e4', 4), await publish(c, r1, 'e5', 5)]
    const resumed = await openSse(t, c.port, path, { 'last-event-id': lastEventId })
    const replay = [await resumed.next(), await resumed.next(), await resumed.next()]
    const of = (room: string, i: number) => replay.filter((f) => f.data.room === room).map((f) => [entryOf(f.id, i), f.event])
    t.same(of(r1, 0), [[missed[0].id, 'e3'], [missed[2].id, 'e5']], 'the first room: its missed events in order')
    t.same(of(r2, 1), [[missed[1].id, 'e4']], 'the second room')
    const live = await publish(b, r2, 'e6', 6)
    const next = await resumed.next()
    t.same([next.event, entryOf(next.id, 1)], ['e6', live.id], 'then live')
    t.notOk(resumed.frames.some((f) => f.event === 'gap'), 'no gap')
    const foreign = await openSse(t, b.port, path, { 'last-event-id': 'forged~ids' })
    const gaps = [await foreign.next(), await foreign.next()]
    t.same(gaps.map((f) => [f.event, f.data.room]).sort(), [['gap', r1], ['gap', r2]].sort(), 'an unreadable id: a gap for every room, not an error')
  })

  t.test('a ws join with since on C resumes exactly from an id seen on A', async (t) => {
    const [room] = await roomsOnShards(cluster, 'resume', 1)
    const onA = await connectWs(t, a)
    await joinRoom(onA, room)
    await publish(b, room, 'r1', 1)
    const last = await onA.until((f) => f.op === 'event' && f.event === 'r1')
    onA.ws.terminate()
    const missed = [await publish(a, room, 'r2', 2), await publish(b, room, 'r3', 3)]
    const onC = await connectWs(t, c)
    const joined = await joinRoom(onC, room, last.id)
    t.equal(joined.recovered, true)
    const live = await publish(a, room, 'r4', 4)
    await onC.until((f) => f.op === 'event' && f.id === live.id)
    t.same(onC.all.filter((f) => f.op === 'event').map((f) => f.id), [...missed.map((m) => m.id), live.id])
  })

  t.test('presence and the room list count every instance', async (t) => {
    const [room] = await roomsOnShards(cluster, 'lobby', 1)
    const alice = await connectWs(t, a, await signToken(JWT_SECRET, 'alice'))
    await joinRoom(alice, room)
    const bob = await openSse(t, b.port, `/sse?room=${room}&token=${await signToken(JWT_SECRET, 'bob')}`)
    const carol = await connectWs(t, c, await signToken(JWT_SECRET, 'carol'))
    await joinRoom(carol, room)
    for (const instance of [a, b, c]) {
      await poll(async () => (await presence(instance, room)).members === 3, 10_000, `three members seen from ${instance.name}`)
      t.same(await presence(instance, room), { members: 3, users: ['alice', 'bob', 'carol'] })
    }
    const listed = await b.request('GET', '/api/rooms', { headers: auth })
    t.match(listed.body.rooms, [{ room, members: 3 }])
    bob.close()
    await poll(async () => (await presence(c, room)).members === 2, 10_000, 'bob to leave')
  })

  t.test('an Idempotency-Key sent to all three at once publishes once; a Stripe event delivered twice is handled once', async (t) => {
    const [room] = await roomsOnShards(cluster, 'orders', 1)
    const ws = await connectWs(t, c)
    await joinRoom(ws, room)
    const headers = { ...auth, 'idempotency-key': 'order-77' }
    const answers = await Promise.all([a, b, c].map(async (instance) => await instance.request('POST', `/api/rooms/${room}/events`, { headers, body: { event: 'paid', data: 77 } })))
    t.same(answers.map((r) => r.status), [202, 202, 202])
    t.equal(new Set(answers.map((r) => r.body.id)).size, 1, 'one id for all')
    const stripeWs = await connectWs(t, b, await signToken(JWT_SECRET, 'ops', ['stripe']))
    await joinRoom(stripeWs, 'stripe')
    const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_shards_1')
    const stripeHeaders = { 'content-type': 'application/json', 'stripe-signature': sign(payload) }
    const handled = await Promise.all([a, c].map(async (instance) => await instance.request('POST', '/webhooks/stripe', { headers: stripeHeaders, body: payload })))
    t.same(handled.map((r) => r.status), [200, 200])
    t.equal(handled.filter((r) => r.body.duplicate === true).length, 1, 'one of them saw a duplicate')
    const sentinel = await publish(a, room, 'sentinel', null)
    await ws.until((f) => f.op === 'event' && f.id === sentinel.id)
    t.same(ws.all.filter((f) => f.op === 'event').map((f) => f.event), ['paid', 'sentinel'], 'published once')
    const stripeSentinel = await publish(a, 'stripe', 'sentinel', null)
    await stripeWs.until((f) => f.op === 'event' && f.id === stripeSentinel.id)
    t.same(stripeWs.all.filter((f) => f.op === 'event').map((f) => f.event), ['stripe.checkout.session.completed', 'sentinel'])
  })

  t.test('rtc peers on two instances signal each other through the cluster', async (t) => {
    const [room] = await roomsOnShards(cluster, 'call', 1)
    const alice = await connectRtc(t, a)
    await joinRoom(alice, room)
    const bob = await connectRtc(t, c)
    const joined = await joinRoom(bob, room)
    t.same(joined.peers, [alice.peer], 'bob is told of alice on the other instance')
    await alice.until((f) => f.op === 'peer-joined')
    alice.send({ op: 'signal', room, to: bob.peer, data: { type: 'offer', sdp: 'x' } })
    t.same(await bob.until((f) => f.op === 'signal'), { op: 'signal', room, from: alice.peer, data: { type: 'offer', sdp: 'x' } })
  })

  t.test('a master killed mid-stream: /ready tells, publishes to its shard recover after the failover, resume is honest', async (t) => {
    const [room, other] = await roomsOnShards(cluster, 'failover', 2)
    const victim = await cluster.masterOf(keySlot(`${PREFIX}:{${room}}:m`))
    const node = cluster.nodes.find((n) => n.port === victim)
    if (node === undefined) throw new Error('no such node')
    const ws = await connectWs(t, b)
    await joinRoom(ws, room)
    await joinRoom(ws, other)
    const ids = [(await publish(a, room, 'before', 0)).id]
    await ws.until((f) => f.id === ids[0])
    const stream = await openSse(t, c.port, `/sse?room=${room}`)

    await node.stop('SIGKILL')
    // until the replica takes over, the instances say so rather than answer 200: watched while publishing
    let watching = true
    let sawNotReady = false
    const watcher = (async () => {
      while (watching) {
        for (const instance of [a, b, c]) {
          const ready = await instance.request('GET', '/ready').catch(() => null)
          if (ready?.status === 503) {
            sawNotReady = true
            t.equal(ready.body.status, 'unavailable')
            t.ok(ready.body.failing.some((reason: string) => ['redis', 'redis:slots', 'redis:subscriptions'].includes(reason)), `with the reason: ${ready.body.failing.join(', ')}`)
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    let refused = 0
    const deadline = Date.now() + 30_000
    while (ids.length < 10 && Date.now() < deadline) {
      const answer = await a.request('POST', `/api/rooms/${room}/events`, { headers: auth, body: { event: 'during', data: ids.length } })
      if (answer.status === 202) ids.push(answer.body.id)
      else {
        refused++
        t.equal(answer.status, 503, 'refused, not queued')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    watching = false
    await watcher
    t.ok(refused > 0 && sawNotReady, `publishes refused (${refused}) and /ready 503 while the shard had no master`)
    t.equal(ids.length, 10, 'publishes recovered after the failover')
    const onOther = await publish(b, other, 'other-shard', 1)
    await Promise.all([a, b, c].map(async (instance) => { await instance.waitReady(30_000) }))
    await poll(async () => ws.all.some((f) => f.id === ids[9]) && ws.all.some((f) => f.id === onOther.id), 15_000, 'every event on the ws member')
    t.same(ws.all.filter((f) => f.op === 'event' && f.room === room).map((f) => f.id), ids, 'the ws member got every event once, in order')
    const streamed: string[] = []
    while (streamed.length < 9) streamed.push((await stream.next(15_000)).id as string)
    t.same(streamed, ids.slice(1), 'the SSE stream too')
    const resumed = await openSse(t, a.port, `/sse?room=${room}`, { 'last-event-id': ids[3] })
    const first = await resumed.next()
    if (first.event === 'gap') t.pass('writes were lost in the failover: the resume says so')
    else t.equal(first.id, ids[4], 'the replica had every write: the resume is exact')
    await node.start()
    await cluster.waitHealthy(30_000)
  })
})
