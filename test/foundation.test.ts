import t from 'tap'
import { z } from 'zod'
import { loadPeer } from '../lib/peer.js'
import { decoratorOption, fnOption, formatIssues, intOption, parseOptions, pathOption } from '../lib/options.js'
import { GatewayCounters } from '../lib/metrics/counters.js'
import { loadConfig } from '../lib/config.js'

t.test('loadPeer names the package to install when it is missing, and passes other load errors on', async (t) => {
  const missing = Object.assign(new Error("Cannot find package 'mqtt' imported from /x.js"), { code: 'ERR_MODULE_NOT_FOUND' })
  await t.rejects(loadPeer('mqtt', 'mqtt', async () => { throw missing }), {
    code: 'GW_MISSING_PEER', message: 'the mqtt gateway needs the package mqtt: npm install mqtt', cause: missing
  })
  const broken = new SyntaxError('Unexpected token')
  await t.rejects(loadPeer('mqtt', 'mqtt', async () => { throw broken }), broken)
  const other = Object.assign(new Error("Cannot find package 'left-pad' imported from mqtt"), { code: 'ERR_MODULE_NOT_FOUND' })
  await t.rejects(loadPeer('mqtt', 'mqtt', async () => { throw other }), other, "a missing dependency OF the peer is not reported as the peer's absence")
})

t.test('loadPeer merges a CommonJS default export with the hoisted named exports', async (t) => {
  const mod = await loadPeer<{ a: number, b: number }>('x', 'x', async () => ({ default: { a: 1 }, b: 2 }))
  t.same({ a: mod.a, b: mod.b }, { a: 1, b: 2 })
  const fn = (): number => 3
  const plain = await loadPeer<{ default: () => number }>('y', 'y', async () => ({ default: fn }))
  t.equal(plain.default, fn, 'a function default export is left as it is')
})

t.test('the options toolkit names every problem in one line', async (t) => {
  const Schema = z.strictObject({
    path: pathOption.default('/x'),
    size: intOption(1, 10, 5),
    onEvent: fnOption<() => void>('() => void'),
    decorator: decoratorOption('kafka')
  })
  t.same(parseOptions('p', Schema, { prefix: '/ignored', logLevel: 'info' }), { path: '/x', size: 5, decorator: 'kafka' })
  t.throws(() => parseOptions('fastify-gateways/p', Schema, { path: 'x', size: 11, onEvent: 1, decorator: '1a', extra: true }), {
    code: 'GW_INVALID_OPTIONS',
    message: /^invalid options for fastify-gateways\/p: path: must be a path starting with \/; size: .*; onEvent: must be a function \(\) => void; decorator: must be a JavaScript identifier; unknown option "extra"$/
  })
  const issues = z.object({ a: z.string(), b: z.number() }).safeParse({ a: 1, b: 'x' }).error?.issues ?? []
  t.equal(formatIssues(issues, { first: true }).split('; ').length, 1)
  t.match(formatIssues(issues), /^a: .*; b: /)
  t.equal(formatIssues([]), 'invalid value')
})

t.test('counters are plain numbers per transport, reason, provider and broker', async (t) => {
  const c = new GatewayCounters()
  c.connectionOpened('ws')
  c.connectionOpened('ws')
  c.connectionClosed('ws', 'slow_consumer')
  c.delivered('sse', 3)
  c.webhook('stripe', 'duplicate')
  c.streamMessage('mqtt', 'dead_lettered')
  t.equal(c.connections.ws, 1)
  t.equal(c.disconnects.ws.slow_consumer, 1)
  t.equal(c.deliveries.sse, 3)
  t.equal(c.webhooks.stripe.duplicate, 1)
  t.equal(c.streamMessages.mqtt.dead_lettered, 1)
  t.equal(c.streamMessages.kafka.handled, 0)
})

t.test('REDIS_CLUSTER_NODES is refused next to REDIS_URL; redis-streams needs a Redis', async (t) => {
  t.throws(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }), {
    message: 'REDIS_CLUSTER_NODES: cannot be used together with REDIS_URL (set one of them)'
  })
  t.equal(loadConfig({ GATEWAYS: 'redis-streams', REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_STREAMS_URL, undefined)
  t.throws(() => loadConfig({ GATEWAYS: 'redis-streams' }), { message: /^REDIS_STREAMS_URL: is required/ })
  t.same(loadConfig({ MQTT_BRIDGE: 'devices/+/telemetry=device:{1}' }).MQTT_BRIDGE, [['devices/+/telemetry', 'device:{1}']])
  t.throws(() => loadConfig({ MQTT_BRIDGE: 'a/#/b=x' }), { message: /^MQTT_BRIDGE: each entry must be topicFilter=roomTemplate/ })
  t.same(loadConfig({ NATS_BRIDGE: 'orders.*.status=user:{1}' }).NATS_BRIDGE, [['orders.*.status', 'user:{1}']])
})
