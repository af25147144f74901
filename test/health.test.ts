import t from 'tap'
import Fastify from 'fastify'
import { health, ensureReadiness, Readiness } from '../plugins/health.js'
import { rooms } from '../plugins/rooms.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'

t.test('the health plugin: /health always, /ready from every check a plugin added, before or after it', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  let mqtt = true
  // a check added before the health plugin, and one after: both land on the one app.readiness
  ensureReadiness(app).add('mqtt', () => mqtt)
  await app.register(health, { checks: { custom: () => true } })
  const removeNats = ensureReadiness(app).add('nats', async () => await Promise.resolve(false))
  await app.ready()
  t.same(app.readiness.names(), ['mqtt', 'nats'])
  const h = await app.inject('/health')
  t.equal(h.statusCode, 200)
  t.same(h.json(), { status: 'ok' })
  t.equal(h.headers['cache-control'], 'no-store')
  let r = await app.inject('/ready')
  t.equal(r.statusCode, 503)
  t.same(r.json(), { status: 'unavailable', failing: ['nats'] })
  mqtt = false
  t.same((await app.inject('/ready')).json(), { status: 'unavailable', failing: ['mqtt', 'nats'] })
  mqtt = true
  removeNats()
  removeNats()
  r = await app.inject('/ready')
  t.equal(r.statusCode, 200)
  t.same(r.json(), { status: 'ok' })
})

t.test('checks that throw, reject, answer non-true or hang fail; one name with two checks passes only when both do', async (t) => {
  const readiness = new Readiness()
  readiness.add('throws', () => { throw new Error('boom') })
  readiness.add('rejects', async () => { throw new Error('boom') })
  readiness.add('hangs', async () => await new Promise<boolean>(() => {}))
  readiness.add('kafka', () => true)
  readiness.add('kafka', () => false)
  readiness.add('ok', async () => true)
  t.same(await readiness.evaluate(50, { extra: () => false }), { ready: false, failing: ['throws', 'rejects', 'hangs', 'kafka', 'extra'] })
  t.same(await new Readiness().evaluate(50), { ready: true, failing: [] })
})

t.test('a shared room bus (Redis) is a dependency of /ready under its name; bus: false leaves it out', async (t) => {
  class SharedBus extends MemoryBus {
    override readonly name = 'redis' as 'memory'
    up = true
    override failing (): string[] { return this.up ? [] : ['redis'] }
  }
  const bus = new SharedBus({ historySize: 10 })
  const app = Fastify()
  t.after(() => app.close())
  await app.register(health, { healthPath: '/livez', readyPath: '/readyz' })
  await app.register(rooms, { bus })
  await app.ready()
  t.equal((await app.inject('/livez')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  bus.up = false
  t.same((await app.inject('/readyz')).json(), { status: 'unavailable', failing: ['redis'] })

  const other = Fastify()
  t.after(() => other.close())
  await other.register(rooms, { bus: new SharedBus({ historySize: 10 }) })
  await other.register(health, { bus: false })
  await other.ready()
  ;(other.rooms.bus as SharedBus).up = false
  t.equal((await other.inject('/ready')).statusCode, 200, 'not asked')

  const memory = Fastify()
  t.after(() => memory.close())
  await memory.register(rooms)
  await memory.register(health)
  await memory.ready()
  t.same(memory.readiness.names(), [], 'the in-memory bus is no dependency')
})

t.test('bad health options are refused by name', async (t) => {
  await t.rejects(async () => {
    const app = Fastify()
    await app.register(health, { checks: { x: 1 } } as never)
    await app.ready()
  }, { code: 'GW_INVALID_OPTIONS', message: /checks\.x: must be a function/ })
})
