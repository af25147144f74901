import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { RedisBus } from '../lib/redis/index.js'
import type { Member, RoomEvent } from '../lib/rooms/types.js'
import { buildTestApp } from './helpers/app.js'
import { startRedis, until } from './helpers/redis.js'

// With Redis, the dashboard of one instance shows the rooms, members, users and instances of the whole deployment,
// and what it publishes reaches members on the others.

const PASSWORD = 'correct horse battery staple'

function member (app: FastifyInstance, user: string | null, inbox: RoomEvent[] = []): Member {
  return { id: app.rooms.nextMemberId(), user, transport: 'test', encoder: { name: 'json', encode: (e) => e.dataJson }, deliver: (_d, e) => { inbox.push(e) } }
}

t.test('two instances on one Redis: the admin API of one lists the rooms and users of both, and publishes to both', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const env = { GATEWAYS: 'ws', REDIS_URL: redis.url, ADMIN_PASSWORD: PASSWORD, REDIS_PRESENCE_TTL_MS: '2000' }
  const { app: a } = await buildTestApp(env)
  t.after(() => a.close())
  const { app: b } = await buildTestApp(env)
  t.after(() => b.close())
  await (a.rooms.bus as RedisBus).waitReady(10_000)
  await (b.rooms.bus as RedisBus).waitReady(10_000)

  const onB: RoomEvent[] = []
  b.rooms.join('public:ops', member(b, 'bob', onB))
  b.rooms.join('public:ops', member(b, null))
  a.rooms.join('public:ops', member(a, 'alice'))
  b.rooms.join('orders:9', member(b, 'carol'))

  const login = await a.inject({ method: 'POST', url: '/admin/login', payload: { password: PASSWORD } })
  const cookie = String(login.headers['set-cookie']).split(';')[0]
  const csrf = login.json().csrfToken as string
  const get = async (url: string) => (await a.inject({ url, headers: { cookie } })).json()

  await until(async () => (await get('/admin/api/rooms')).total === 2, 10_000, 'both rooms listed on A')
  t.same(await get('/admin/api/rooms'), {
    total: 2,
    rooms: [
      { room: 'public:ops', members: 3, users: ['alice', 'bob'], usersTotal: 2 },
      { room: 'orders:9', members: 1, users: ['carol'], usersTotal: 1 }
    ]
  }, "B's members and users are on A's dashboard")
  await until(async () => ((await get('/admin/api/overview')).instances ?? []).length === 2, 15_000, 'both instances seen')
  const { instances, localRooms } = await get('/admin/api/overview')
  t.same(instances.map((i: { id: string }) => i.id).sort(), [a.rooms.instanceId, b.rooms.instanceId].sort())
  t.same(instances.filter((i: { self: boolean }) => i.self).map((i: { id: string }) => i.id), [a.rooms.instanceId])
  t.equal(localRooms, 1, 'the local room count stays per instance')

  const published = await a.inject({
    method: 'POST', url: '/admin/api/publish', headers: { cookie, 'x-csrf-token': csrf }, payload: { room: 'public:ops', event: 'notice', data: { n: 1 } }
  })
  t.equal(published.statusCode, 200)
  t.equal(published.json().delivered, 1, 'one member on A')
  await until(() => onB.length === 1, 10_000, 'the event to reach B')
  t.match(onB[0], { room: 'public:ops', event: 'notice', data: { n: 1 } })
})
