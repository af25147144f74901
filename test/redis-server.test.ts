import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { buildTestApp } from './helpers/app.js'
import { startRedis, until } from './helpers/redis.js'
import { loadConfig } from '../lib/config.js'
import { createRoomPolicy } from '../lib/auth/policy.js'
import { rooms } from '../plugins/rooms.js'
import { wireRedis, type Wiring } from '../server.js'
import { RedisBus } from '../lib/redis/bus.js'
import { RedisDedupeStore } from '../lib/redis/dedupe.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'

const PASSWORD = 'redis-pass-that-must-not-be-logged'
const API_KEY = 'ops-0123456789abcdef'
const encoder: Encoder<RoomEvent> = { name: 'test', encode: (ev) => ev }

function member (app: { rooms: { nextMemberId: () => string } }, user: string, received: RoomEvent[]): Member<RoomEvent> {
  return { id: app.rooms.nextMemberId(), user, transport: 'test', encoder, deliver (ev) { received.push(ev) } }
}

async function serve (t: Test, env: Record<string, string>) {
  const built = await buildTestApp(env)
  t.after(() => built.app.close())
  return built
}

async function readyStatus (app: Awaited<ReturnType<typeof serve>>['app']) {
  const response = await app.inject('/ready')
  return { status: response.statusCode, body: response.json() as { status: string, failing?: string[] } }
}

t.test('with REDIS_URL, /ready is 200 while Redis is up and 503 failing ["redis"] while it is down', async (t) => {
  const redis = await startRedis(t, { args: ['--requirepass', PASSWORD] })
  if (redis === null) return
  const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`
  const { app, logs } = await serve(t, { GATEWAYS: 'external', EXTERNAL_API_KEYS: `ops=${API_KEY}`, REDIS_URL: url, HISTORY_SIZE: '7' })
  t.ok(app.rooms.bus instanceof RedisBus, 'rooms go through the Redis bus')
  t.equal((app.rooms.bus as RedisBus).historySize, 7, 'HISTORY_SIZE reaches the bus')
  await until(async () => (await readyStatus(app)).status === 200, 10_000, '/ready 200')
  t.same((await readyStatus(app)).body, { status: 'ok' })

  await redis.stop()
  await until(async () => (await readyStatus(app)).status === 503, 10_000, '/ready 503')
  t.same((await readyStatus(app)).body, { status: 'unavailable', failing: ['redis'] })
  t.equal((await app.inject('/health')).statusCode, 200, 'the process still serves')
  const refused = await app.inject({
    method: 'POST',
    url: '/api/rooms/public:news/events',
    headers: { authorization: `Bearer ${API_KEY}` },
    payload: { event: 'n', data: 1 }
  })
  t.equal(refused.statusCode, 503, 'a publish is refused, not queued')
  t.equal(refused.json().code, 'GW_BUS_UNAVAILABLE')

  await redis.start()
  await until(async () => (await readyStatus(app)).status === 200, 10_000, '/ready 200 after the restart')
  t.ok(logs.lines.some((line) => line.includes('connection lost')), 'the outage is logged')
  t.notOk(logs.text().includes(PASSWORD), 'the Redis password is never logged')
})

t.test('two server.ts instances on one Redis share rooms, presence and Idempotency-Key answers', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = { GATEWAYS: 'external', REDIS_URL: redis.url, EXTERNAL_API_KEYS: `ops=${API_KEY}` }
  const { app: a } = await serve(t, env)
  const { app: b } = await serve(t, env)
  await (a.rooms.bus as RedisBus).waitReady(10_000)
  await (b.rooms.bus as RedisBus).waitReady(10_000)

  const onB: RoomEvent[] = []
  b.rooms.join('user:u1', member(b, 'u1', onB))
  a.rooms.join('user:u1', member(a, 'u2', []))
  const post = async (app: typeof a) => await app.inject({
    method: 'POST',
    url: '/api/rooms/user:u1/events',
    headers: { authorization: `Bearer ${API_KEY}`, 'idempotency-key': 'order-77' },
    payload: { event: 'notification', data: { title: 'New Message!' } }
  })
  const first = await post(a)
  t.equal(first.statusCode, 202)
  const second = await post(b)
  t.equal(second.statusCode, first.statusCode, 'the other instance replays the answer')
  t.same(second.json(), first.json())
  await until(() => onB.length === 1, 5000, 'the event on B')
  t.equal(onB[0].id, first.json().id)
  t.same(onB[0].data, { title: 'New Message!' })

  await until(async () => (await b.inject({ url: '/api/rooms/user:u1', headers: { authorization: `Bearer ${API_KEY}` } })).json().members === 2, 5000, 'presence of both')
  const presence = (await b.inject({ url: '/api/rooms/user:u1', headers: { authorization: `Bearer ${API_KEY}` } })).json()
  t.same(presence.users.sort(), ['u1', 'u2'])
  t.equal(onB.length, 1, 'published once')
})

t.test('wireRedis gives every gateway Redis dedupe stores that agree across instances', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const config = loadConfig({ GATEWAYS: ',', REDIS_URL: redis.url, REDIS_PREFIX: 'site1' })
  const wirings: Wiring[] = []
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    t.after(() => app.close())
    const wiring: Wiring = { config, authenticate: undefined, policy: createRoomPolicy({ publicRooms: [], clientPublishRooms: [] }), createStore: () => { throw new Error('unset') } }
    const bus = await wireRedis(app, { url: redis.url }, wiring)
    await app.register(rooms, { bus })
    await app.ready()
    await bus.waitReady(10_000)
    wirings.push(wiring)
    apps.push(app)
  }
  const ready = async (app: FastifyInstance) => await app.readiness.evaluate(1000)
  await until(async () => (await Promise.all(apps.map(ready))).every((r) => r.ready), 5000, 'the checks to pass')
  const [one, two] = wirings.map((w) => w.createStore('stripe'))
  t.ok(one instanceof RedisDedupeStore)
  t.same(await one.claim('evt_1', 10_000), { state: 'claimed' })
  t.same(await two.claim('evt_1', 10_000), { state: 'pending' })
  await one.complete('evt_1', 'handled', 60_000)
  t.same(await two.claim('evt_1', 10_000), { state: 'done', value: 'handled' })
  t.match(await redis.command(['GET', 'site1:dedupe:stripe:evt_1']), /d:handled/, 'keys under REDIS_PREFIX')
  t.same(apps[0].readiness.names(), ['redis', 'redis:subscriptions'], 'the readiness checks added: no slot check on one Redis')
  t.same(await ready(apps[1]), { ready: true, failing: [] }, 'they pass')
})
