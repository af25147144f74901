import t from 'tap'
import { startRedis, type RedisServer } from './helpers/redis.js'
import { connectWs, joinRoom, openSse, poll, roomsApi, signToken, startInstance, startInstances, type Instance } from './helpers/instance.js'
import { parseId } from '../lib/rooms/ids.js'

// several server.ts processes start (tsx compiles each): on a busy machine that outlasts the default file timeout
t.setTimeout(180_000)

// Failures of a two-instance deployment, with real processes: Redis restarting under live connections, and an
// instance killed without a chance to clean up.

const JWT_SECRET = 'cluster-outage-secret-that-is-long-enough-for-hs256'
const API_KEY = 'ops-outage-0123456789abcdef'
const auth = { authorization: `Bearer ${API_KEY}` }
const { publish, presence } = roomsApi(auth)
const PRESENCE_TTL_MS = 1500



/** Stops Redis and waits until both instances report it on `/ready`. */
async function redisDown (redis: RedisServer, instances: Instance[]) {
  await redis.stop()
  for (const instance of instances) {
    await poll(async () => (await instance.request('GET', '/ready')).status === 503, 10_000, `${instance.name} /ready 503`)
  }
}

/** Starts Redis again and waits until both instances are ready (connected and subscribed) again. */
async function redisUp (redis: RedisServer, instances: Instance[]) {
  await redis.start()
  await Promise.all(instances.map(async (instance) => { await instance.waitReady(15_000) }))
}

t.test('a deployment of two instances through Redis outages and crashes', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = {
    GATEWAYS: 'ws,sse,external',
    REDIS_URL: redis.url,
    AUTH_JWT_SECRET: JWT_SECRET,
    EXTERNAL_API_KEYS: `ops=${API_KEY}`,
    CLIENT_PUBLISH_ROOMS: 'public:*',
    REDIS_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS)
  }
  const [a, b] = await startInstances(t, 2, env)
  await Promise.all([a.waitReady(), b.waitReady()])

  t.test('clients on both instances stay connected while Redis restarts, and publishing reaches them all again after it', async (t) => {
    const room = 'public:outage'
    const ws = [await connectWs(t, a), await connectWs(t, b)]
    for (const client of ws) await joinRoom(client, room)
    const sse = [await openSse(t, a.port, `/sse?room=${room}`), await openSse(t, b.port, `/sse?room=${room}`)]
    const before = await publish(a, room, 'before', 1)
    for (const client of ws) t.equal((await client.until((f) => f.op === 'event')).id, before.id)
    for (const stream of sse) t.equal((await stream.next()).id, before.id)

    await redisDown(redis, [a, b])
    for (const instance of [a, b]) {
      const ready = await instance.request('GET', '/ready')
      t.same({ status: ready.status, body: ready.body }, { status: 503, body: { status: 'unavailable', failing: ['redis'] } }, `${instance.name} is not ready`)
      t.equal((await instance.request('GET', '/health')).status, 200, `${instance.name} still serves`)
    }
    const refused = await a.request('POST', `/api/rooms/${room}/events`, { headers: auth, body: { event: 'during', data: 2 } })
    t.equal(refused.status, 503, 'an HTTP publish is refused, not queued')
    t.equal(refused.body.code, 'GW_BUS_UNAVAILABLE')
    ws[1].send({ op: 'publish', room, event: 'during', data: 3, ref: 'down' })
    t.match(await ws[1].until((f) => f.ref === 'down'), { op: 'error', code: 'UNAVAILABLE', ref: 'down' }, 'a ws publish is refused')
    for (const [i, client] of ws.entries()) {
      client.send({ op: 'ping', ref: `ping-${i}` })
      t.match(await client.until((f) => f.ref === `ping-${i}`), { op: 'pong' }, `the ws client on ${[a, b][i].name} is still served`)
    }

    await redisUp(redis, [a, b])
    const after = await publish(b, room, 'after', 4)
    for (const [i, client] of ws.entries()) {
      const frame = await client.until((f) => f.op === 'event')
      t.same([frame.id, frame.event], [after.id, 'after'], `the same ws connection on ${[a, b][i].name} gets the next event`)
    }
    for (const [i, stream] of sse.entries()) {
      const frame = await stream.next()
      t.same([frame.id, frame.event], [after.id, 'after'], `the same SSE stream on ${[a, b][i].name} gets the next event`)
      t.equal(stream.closed, false)
    }
    for (const client of ws) t.equal(client.all.filter((f) => f.event === 'during').length, 0, 'nothing refused was delivered later')
    t.not(parseId(after.id)?.epoch, parseId(before.id)?.epoch, 'Redis lost its data: ids are of a new epoch')
    await poll(async () => (await presence(a, room)).members === 4, 10_000, 'presence to be rewritten after the restart')
    t.equal((await presence(b, room)).members, 4, 'each instance wrote its members again')
  })

  t.test('a client resuming with an id from before a Redis restart learns that events may be missing', async (t) => {
    const room = 'public:epoch'
    const before = await publish(a, room, 'before', 1)
    await redisDown(redis, [a, b])
    await redisUp(redis, [a, b])
    const after = await publish(a, room, 'after', 2)

    const ws = await connectWs(t, b)
    const joined = await joinRoom(ws, room, before.id)
    t.equal(joined.recovered, false, 'ws: recovered false (the id is of an epoch Redis no longer has)')
    t.same((await ws.until((f) => f.op === 'event')).id, after.id, 'what the new epoch holds is sent')

    const stream = await openSse(t, a.port, `/sse?room=${room}`, { 'last-event-id': before.id })
    const gap = await stream.next()
    t.same({ event: gap.event, data: gap.data }, { event: 'gap', data: { room } }, 'SSE: event gap first')
    t.equal((await stream.next()).id, after.id)
  })

  t.test('the members of a killed instance leave presence once REDIS_PRESENCE_TTL_MS has passed', async (t) => {
    const room = 'public:crash'
    const c = await startInstance(t, env, { name: 'C' })
    await c.waitReady()
    const alice = await connectWs(t, a, await signToken(JWT_SECRET, 'alice'))
    await joinRoom(alice, room)
    const carol = await connectWs(t, c, await signToken(JWT_SECRET, 'carol'))
    await joinRoom(carol, room)
    const dave = await openSse(t, c.port, `/sse?room=${room}&token=${await signToken(JWT_SECRET, 'dave')}`)
    t.equal(dave.status, 200)
    for (const instance of [a, b]) {
      await poll(async () => (await presence(instance, room)).members === 3, 5000, `presence of all three on ${instance.name}`)
      t.same(await presence(instance, room), { members: 3, users: ['alice', 'carol', 'dave'] }, `${instance.name} counts C's members`)
    }

    await c.crash()
    t.equal(await c.exited, 128 + 9, 'C was SIGKILLed: no graceful shutdown removed its presence')
    t.equal((await carol.waitClose(5000)).code, 1006, 'its ws client lost the connection')
    await dave.ended
    for (const instance of [a, b]) {
      await poll(async () => (await presence(instance, room)).members === 1, PRESENCE_TTL_MS + 8000, `C's members to expire on ${instance.name}`)
      t.same(await presence(instance, room), { members: 1, users: ['alice'] }, `${instance.name} no longer counts C's members`)
    }
    const sent = await publish(b, room, 'still', 1)
    t.equal((await alice.until((f) => f.op === 'event')).id, sent.id, 'the survivors go on')
  })
})
