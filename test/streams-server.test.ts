import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { loadConfig } from '../lib/config.js'
import { buildApp } from '../server.js'
import { buildTestApp } from './helpers/app.js'
import { openWs } from './helpers/ws-client.js'
import { openSse } from './helpers/instance.js'
import { startMosquitto } from './helpers/mosquitto.js'
import { startNats } from './helpers/nats.js'
import { startRedis } from './helpers/redis.js'
import { requireTool } from './helpers/tools.js'
import { waitUntil } from './helpers/streams.js'

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

t.test('server.ts with GATEWAYS=ws,sse,mqtt,nats,redis-streams: a message on each broker reaches a ws and an SSE member', async (t) => {
  const [mosquitto, nats, redis] = await Promise.all([startMosquitto(t), startNats(t), startRedis(t)])
  const cli = requireTool(t, 'redis-cli')
  if (mosquitto === null || nats === null || redis === null || cli === null) return
  const { app } = await buildTestApp({
    GATEWAYS: 'ws,sse,mqtt,nats,redis-streams',
    MQTT_URL: mosquitto.url,
    MQTT_BRIDGE: 'devices/+/telemetry=public:device:{1}',
    MQTT_CLIENT_ID: 'server-e2e',
    NATS_URL: nats.url,
    NATS_BRIDGE: 'orders.*.status=public:order:{1}',
    REDIS_URL: redis.url,
    REDIS_STREAMS_BRIDGE: 'notifications=public:user:{userId}',
    REDIS_STREAMS_BLOCK_MS: '100'
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 20_000, '/ready says 200')

  const frames = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.after(() => { frames.ws.terminate() })
  t.match(await frames.next(), { op: 'hello' })
  const rooms = ['public:device:d1', 'public:order:o1', 'public:user:42']
  for (const room of rooms) t.same(await frames.request({ op: 'join', room }), { op: 'joined', room })
  const sse = await openSse(t, port, `/sse?${rooms.map((room) => `room=${room}`).join('&')}`)

  const cases: Array<[string, string, () => Promise<unknown>, unknown]> = [
    ['public:device:d1', 'devices/d1/telemetry', () => mosquitto.pub(['-q', '1', '-t', 'devices/d1/telemetry', '-m', '{"t":21.5}']), { t: 21.5 }],
    ['public:order:o1', 'orders.o1.status', () => nats.publish([{ subject: 'orders.o1.status', data: '{"status":"shipped"}' }]), { status: 'shipped' }],
    ['public:user:42', 'notifications', () => new Promise<void>((resolve, reject) => {
      execFile(cli, ['-p', String(redis.port), 'XADD', 'notifications', '*', 'data', '{"userId":"42","title":"New Message!"}'], (err) => { if (err === null) resolve(); else reject(err) })
    }), { userId: '42', title: 'New Message!' }]
  ]
  for (const [room, event, produce, data] of cases) {
    await produce()
    const frame = await frames.until((f) => f.op === 'event' && f.room === room, 15_000)
    t.match(frame, { room, event, data }, `ws gets ${event}`)
    const block = await sse.until((f) => f.event === event, 15_000)
    t.same(block.data.data ?? block.data, data, `sse gets ${event}`)
  }
})

t.test('/ready names every stream broker that cannot be reached, start-up does not wait, close does not hang', async (t) => {
  const port = await closedPort()
  const { app } = await buildTestApp({
    GATEWAYS: 'mqtt,nats,redis-streams',
    MQTT_URL: `mqtt://127.0.0.1:${port}`,
    MQTT_BRIDGE: 'a/+=room:{1}',
    NATS_URL: `nats://127.0.0.1:${port}`,
    NATS_BRIDGE: 'a.*=room:{1}',
    REDIS_STREAMS_URL: `redis://127.0.0.1:${port}`,
    REDIS_STREAMS_BRIDGE: 'a=room'
  })
  t.after(() => app.close())
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 503)
  t.same(ready.json(), { status: 'unavailable', failing: ['mqtt', 'nats', 'redis-streams'] })
  t.equal((await app.inject('/health')).statusCode, 200)
  await t.resolves(app.close(), 'closes while the brokers are unreachable')
})

t.test('server.ts refuses stream settings it cannot use, with one line naming the variable', async (t) => {
  t.throws(() => loadConfig({ GATEWAYS: 'mqtt' }), { message: 'MQTT_URL: is required by the mqtt gateway' })
  t.throws(() => loadConfig({ GATEWAYS: 'nats' }), { message: 'NATS_URL: is required by the nats gateway' })
  t.throws(() => loadConfig({ GATEWAYS: 'redis-streams' }), { message: /REDIS_STREAMS_URL: is required by the redis-streams gateway/ })
  t.throws(() => loadConfig({ GATEWAYS: 'mqtt', MQTT_URL: 'mqtt://h:1', MQTT_BRIDGE: 'a/#/b=room' }), { message: /MQTT_BRIDGE/ })
  t.throws(() => loadConfig({ GATEWAYS: 'mqtt', MQTT_URL: 'mqtt://h:1', STREAM_RETRIES: '-1' }), { message: /STREAM_RETRIES/ })
  await t.rejects(buildApp(loadConfig({ GATEWAYS: 'mqtt', MQTT_URL: 'mqtt://h:1', MQTT_BRIDGE: 'a/+/b=room:{2}', LOG_LEVEL: 'silent' })),
    { code: 'GW_INVALID_OPTIONS', message: /\{2\} needs 2 wildcards, the pattern has 1/ })
})
