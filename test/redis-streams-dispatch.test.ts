import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { execFile } from 'node:child_process'
import { Redis } from 'ioredis'
import { redisStreamsGateway, type RedisStreamMessage } from '../plugins/redis-streams.js'
import { startRedis } from './helpers/redis.js'
import { requireTool } from './helpers/tools.js'
import { Inbox, roomMember, waitUntil } from './helpers/streams.js'

// One redis-server and one app for every dispatch behaviour; each test has its own stream keys.
t.test('redis-streams gateway against redis-server', async (t) => {
  const server = await startRedis(t)
  const cli = requireTool(t, 'redis-cli')
  if (server === null || cli === null) return
  /** `redis-cli XADD`, the last argument (a value) read from stdin when `stdin` is given: any bytes */
  const xadd = (args: string[], stdin?: Buffer) => new Promise<string>((resolve, reject) => {
    const proc = execFile(cli, ['-p', String(server.port), ...(stdin === undefined ? [] : ['-x']), 'XADD', ...args], { encoding: 'utf8' }, (err, out) => {
      if (err !== null) reject(err)
      else resolve(out.trim())
    })
    if (stdin !== undefined) proc.stdin?.end(stdin)
  })
  const redis = new Redis(server.url)
  t.after(() => redis.quit())

  const app = Fastify({ logger: process.env.DEBUG_STREAMS === '1' ? { level: 'debug' } : false })
  t.after(() => app.close())
  await app.register(redisStreamsGateway, {
    url: server.url,
    group: 'dispatch',
    consumer: 'dispatch-1',
    retries: 2,
    retryBackoffMs: 20,
    blockMs: 200,
    bridge: ['devices=device:{deviceId}', 'notifications=user:{user.id}']
  })
  const got = {
    orders: new Inbox<RedisStreamMessage>(),
    regexp: new Inbox<RedisStreamMessage>(),
    signup: new Inbox<RedisStreamMessage<{ id: string }>>(),
    payments: new Inbox<RedisStreamMessage>(),
    poison: new Inbox<RedisStreamMessage>(),
    flaky: new Inbox<RedisStreamMessage>()
  }
  // a RegExp covers the streams that exist when the consumer starts
  await redis.xadd('metrics:cpu', '*', 'data', '{"old":true}')
  app.redisStreams.on('orders', (message) => { got.orders.push(message) })
  app.redisStreams.on(/^metrics:/, (message) => { got.regexp.push(message) })
  app.redisStreams.on('users.signup', (message) => { got.signup.push(message) }, { schema: z.object({ id: z.string() }) })
  app.redisStreams.on('payments', (message) => { got.payments.push(message) })
  app.redisStreams.on('poison', (message) => {
    got.poison.push(message)
    if ((message.value as { n: number }).n === 1) throw new Error('boom: cannot handle n=1')
  })
  app.redisStreams.on('flaky', (message) => {
    got.flaky.push(message)
    if (message.attempt < 3) throw new Error(`attempt ${message.attempt} fails`)
  })
  const device = roomMember(app, 'device:d1')
  const user = roomMember(app, 'user:42')
  await app.ready()
  await waitUntil(() => app.redisStreams.isReady(), 10_000, 'the redis-streams gateway is ready')
  const letters = async (key: string, count: number) => {
    await waitUntil(async () => (await redis.xlen(key)) >= count, 10_000, `${count} dead letters in ${key}`)
    const entries = await redis.xrangeBuffer(key, '-', '+')
    return entries.map(([id, flat]) => {
      const fields: Record<string, Buffer> = {}
      for (let i = 0; i < flat.length; i += 2) fields[flat[i].toString()] = flat[i + 1]
      return { id: id.toString(), fields }
    })
  }

  t.test('a handler gets the JSON of the data field, the stream key, the entry id and the other fields (redis-cli XADD)', async (t) => {
    const id = await xadd(['orders', '*', 'trace', 'abc', 'data', '{"id":9,"total":9.5}'])
    const message = await got.orders.next()
    t.same(message.value, { id: 9, total: 9.5 })
    t.equal(message.stream, 'orders')
    t.equal(message.id, id)
    t.same(message.fields, { trace: 'abc' })
    t.equal(message.attempt, 1)
  })

  t.test('a RegExp handler gets the entries of the streams it matched at start (new entries only: the group starts at the end)', async (t) => {
    await xadd(['metrics:cpu', '*', 'data', '{"load":0.5}'])
    const message = await got.regexp.next()
    t.same(message.value, { load: 0.5 })
    t.equal(message.stream, 'metrics:cpu')
    t.equal(got.regexp.items.length, 1)
  })

  t.test('a bridged stream publishes to the room its template fills, the stream key as event name', async (t) => {
    await xadd(['devices', '*', 'data', '{"deviceId":"d2","t":1}'])
    await xadd(['devices', '*', 'data', '{"deviceId":"d1","t":21.5}'])
    t.match(await device.next(), { room: 'device:d1', event: 'devices', data: { t: 21.5 } })
    await xadd(['notifications', '*', 'data', '{"user":{"id":42},"title":"New Message!"}'])
    t.match(await user.next(), { room: 'user:42', event: 'notifications', data: { title: 'New Message!' } })
  })

  t.test('data that is not JSON goes to <key>.dlq with its original bytes (data, error, source), and the flow goes on', async (t) => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0x7b, 0xc3, 0x0a])
    const id = await xadd(['payments', '*', 'trace', 'x-1', 'data'], bytes)
    await xadd(['payments', '*', 'data', '{"ok":true}'])
    t.same((await got.payments.next()).value, { ok: true })
    const [letter] = await letters('payments.dlq', 1)
    t.same(letter.fields.data, bytes, 'byte for byte')
    t.match(letter.fields.error.toString(), /not JSON/)
    t.equal(letter.fields.source.toString(), 'payments')
    t.equal(letter.fields.id.toString(), id)
    t.equal(letter.fields['error-type'].toString(), 'not-json')
    t.equal(letter.fields.trace.toString(), 'x-1', 'the other fields are kept')
    await waitUntil(async () => ((await redis.xpending('payments', 'dispatch')) as [number])[0] === 0, 10_000, 'nothing pending')
  })

  t.test('a schema failure and a missing template field go to the dead letters', async (t) => {
    await xadd(['users.signup', '*', 'data', '{"id":7}'])
    await xadd(['notifications', '*', 'data', '{"title":"who?"}'])
    await xadd(['users.signup', '*', 'data', '{"id":"u-1"}'])
    t.match((await letters('users.signup.dlq', 1))[0].fields.error.toString(), /id: .*expected string/)
    t.match((await letters('notifications.dlq', 1))[0].fields.error.toString(), /field user\.id is missing/)
    t.same((await got.signup.next()).value, { id: 'u-1' })
    t.equal(got.signup.items.length, 1)
  })

  t.test('a failing handler is retried by claiming its entry again: the delivery count is the attempt', async (t) => {
    await xadd(['flaky', '*', 'data', '{"n":1}'])
    const tries = await got.flaky.take(3)
    t.same(tries.map((m) => m.attempt), [1, 2, 3])
    t.equal(tries[2].id, tries[0].id)
    await waitUntil(async () => ((await redis.xpending('flaky', 'dispatch')) as [number])[0] === 0, 10_000, 'acknowledged')
  })

  t.test('a handler that keeps failing: dead letter after the last delivery, acknowledged with it; the flow goes on', async (t) => {
    const original = '{ "n": 1,  "spaced": "as sent" }'
    await xadd(['poison', '*', 'data', original])
    await xadd(['poison', '*', 'data', '{"n":2}'])
    const [letter] = await letters('poison.dlq', 1)
    t.equal(letter.fields.data.toString(), original)
    t.equal(letter.fields.error.toString(), 'boom: cannot handle n=1')
    t.equal(letter.fields.attempts.toString(), '3')
    await got.poison.waitFor((items) => items.some((m) => (m.value as { n: number }).n === 2), 10_000, 'the next entry')
    await waitUntil(async () => ((await redis.xpending('poison', 'dispatch')) as [number])[0] === 0, 10_000, 'nothing pending')
    t.ok(app.rooms.counters.streamMessages['redis-streams'].dead_lettered >= 4)
  })

  t.test('emit is XADD of the JSON in data, with more fields and MAXLEN ~', async (t) => {
    const first = await app.redisStreams.emit('orders', { id: 1 }, { fields: { source: 'test' } })
    t.equal(first.stream, 'orders')
    const message = await got.orders.next()
    t.same(message.value, { id: 1 })
    t.equal(message.id, first.id)
    t.same(message.fields, { source: 'test' })
    for (let i = 0; i < 300; i++) await app.redisStreams.emit('capped', { i }, { maxLen: 100 })
    t.ok(await redis.xlen('capped') < 300, 'trimmed')
    await t.rejects(app.redisStreams.emit('bad key', {}), { code: 'GW_STREAM_INVALID', statusCode: 400 })
    await t.rejects(app.redisStreams.emit('k', {}, { maxLen: 0 }), { code: 'GW_STREAM_INVALID' })
    await t.rejects(app.redisStreams.emit('k', {}, { fields: { data: 'x' } }), { code: 'GW_STREAM_INVALID' })
  })
})
