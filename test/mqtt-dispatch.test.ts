import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import type { IPublishPacket } from 'mqtt'
import { mqttGateway, type MqttMessage } from '../plugins/mqtt.js'
import { startMosquitto } from './helpers/mosquitto.js'
import { Inbox, mqttWireProxy, roomMember, waitUntil } from './helpers/streams.js'

interface Received { topic: string, payload: Buffer, packet: IPublishPacket }

// One mosquitto and one app for every dispatch behaviour; each test has its own topics.
t.test('mqtt gateway against mosquitto', async (t) => {
  const broker = await startMosquitto(t)
  if (broker === null) return
  const dir = await mkdtemp(join(tmpdir(), 'gw-mqtt-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  // the app's connections go through a proxy that reads every packet on the wire
  const wire = await mqttWireProxy(broker.port)
  t.after(wire.close)

  // the test's own reader of the dead letters and of emits
  const reader = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'test-reader' })
  t.after(() => reader.endAsync(true))
  const received = new Inbox<Received>()
  reader.on('message', (topic, payload, packet) => { received.push({ topic, payload, packet }) })
  await reader.subscribeAsync({ 'dlq/#': { qos: 1 }, 'echo/#': { qos: 1 } })
  const next = async (topic: string) => {
    await received.waitFor((items) => items.some((item) => item.topic === topic), 10_000, `a message on ${topic}`)
    return received.items.find((item) => item.topic === topic) as Received
  }

  const app = Fastify({ logger: process.env.DEBUG_MQTT === '1' ? { level: 'debug' } : false })
  t.after(() => app.close())
  await app.register(mqttGateway, {
    url: `mqtt://127.0.0.1:${wire.port}`,
    clientId: 'dispatch-1',
    group: 'dispatch',
    retries: 2,
    retryBackoffMs: 5,
    // PINGREQs every second while a handler runs (a keepalive of 1 s is too tight on a loaded machine)
    keepaliveS: 2,
    bridge: ['devices/+/telemetry=device:{1}', 'alerts/#=user:{user.id}']
  })
  const got = {
    orders: new Inbox<MqttMessage>(),
    regexp: new Inbox<MqttMessage>(),
    signup: new Inbox<MqttMessage<{ id: string }>>(),
    payments: new Inbox<MqttMessage>(),
    poison: new Inbox<MqttMessage>(),
    slow: new Inbox<MqttMessage>()
  }
  app.mqtt.on('shop/+/orders/+', (message) => { got.orders.push(message) })
  app.mqtt.on(/^metrics\/(cpu|mem)$/, (message) => { got.regexp.push(message) })
  app.mqtt.on('users/signup', (message) => { got.signup.push(message) }, { schema: z.object({ id: z.string() }) })
  app.mqtt.on('payments', (message) => { got.payments.push(message) })
  app.mqtt.on('poison', (message) => {
    got.poison.push(message)
    if ((message.value as { n: number }).n === 1) throw new Error('boom: cannot handle n=1')
  })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  app.mqtt.on('slow', async (message) => {
    got.slow.push(message)
    await gate
  })
  const device = roomMember(app, 'device:d1')
  const user = roomMember(app, 'user:42')
  await app.ready()
  await waitUntil(() => app.mqtt.isReady(), 10_000, 'the mqtt gateway is ready')

  t.test('a handler of a filter gets the JSON value, the actual topic, the + values and the properties (mosquitto_pub)', async (t) => {
    await broker.pub(['-V', 'mqttv5', '-q', '1', '-t', 'shop/s1/orders/o-9', '-D', 'publish', 'user-property', 'trace', 'abc', '-m', '{"id":9,"total":9.5}'])
    const message = await got.orders.next()
    t.same(message.value, { id: 9, total: 9.5 })
    t.equal(message.topic, 'shop/s1/orders/o-9')
    t.same(message.wildcards, ['s1', 'o-9'])
    t.same(message.properties.userProperties, { trace: 'abc' })
    t.equal(message.qos, 1)
    t.equal(message.attempt, 1)
  })

  t.test('a RegExp handler gets the messages of every topic it matches, and no dead letters', async (t) => {
    await broker.pub(['-q', '1', '-t', 'metrics/cpu', '-m', '{"load":0.5}'])
    await broker.pub(['-q', '1', '-t', 'metrics/disk', '-m', '{"ignored":true}'])
    await broker.pub(['-q', '1', '-t', 'metrics/mem', '-m', '{"used":1}'])
    const [cpu, mem] = await got.regexp.take(2)
    t.same([cpu.topic, mem.topic], ['metrics/cpu', 'metrics/mem'])
  })

  t.test('a bridged filter publishes to the room made of its + value, the actual topic as event name', async (t) => {
    await broker.pub(['-q', '1', '-t', 'devices/d2/telemetry', '-m', '{"t":1}'])
    await broker.pub(['-q', '1', '-t', 'devices/d1/telemetry', '-m', '{"t":21.5}'])
    const event = await device.next()
    t.equal(event.room, 'device:d1')
    t.equal(event.event, 'devices/d1/telemetry')
    t.same(event.data, { t: 21.5 })
    await broker.pub(['-q', '1', '-t', 'alerts/fire/now', '-m', '{"user":{"id":42},"text":"New Message!"}'])
    t.match(await user.next(), { room: 'user:42', event: 'alerts/fire/now', data: { text: 'New Message!' } })
  })

  t.test('a payload that is not JSON goes to dlq/<topic> with its original bytes, and the flow goes on', async (t) => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0x7b, 0xc3])
    const file = join(dir, 'poison.bin')
    await writeFile(file, bytes)
    await broker.pub(['-V', 'mqttv5', '-q', '1', '-t', 'payments', '-f', file, '-D', 'publish', 'user-property', 'trace', 'x-1'])
    await broker.pub(['-q', '1', '-t', 'payments', '-m', '{"ok":true}'])
    t.same((await got.payments.next()).value, { ok: true }, 'the next message is handled')
    const letter = await next('dlq/payments')
    t.same(letter.payload, bytes, 'byte for byte')
    const props = letter.packet.properties?.userProperties as Record<string, string>
    t.match(props.error, /not JSON/)
    t.equal(props['error-type'], 'not-json')
    t.equal(props.trace, 'x-1', 'the original user properties are kept')
    t.equal(props['original-topic'], 'payments')
    t.equal(got.payments.items.length, 1, JSON.stringify(got.payments.items.map((m) => [m.value, m.dup, m.attempt])))
  })

  t.test('a value failing its schema and a bridged value missing its field go to the dead letters', async (t) => {
    await broker.pub(['-q', '1', '-t', 'users/signup', '-m', '{"id":7}'])
    const letter = await next('dlq/users/signup')
    t.equal(letter.payload.toString(), '{"id":7}')
    t.match((letter.packet.properties?.userProperties as Record<string, string>).error, /id: .*expected string/)
    await broker.pub(['-q', '1', '-t', 'alerts/x', '-m', '{"text":"who is this for?"}'])
    const missing = await next('dlq/alerts/x')
    t.equal((missing.packet.properties?.userProperties as Record<string, string>)['error-type'], 'template')
    t.match((missing.packet.properties?.userProperties as Record<string, string>).error, /field user\.id is missing/)
    await broker.pub(['-q', '1', '-t', 'users/signup', '-m', '{"id":"u-1"}'])
    t.same((await got.signup.next()).value, { id: 'u-1' })
    t.equal(got.signup.items.length, 1, 'the handler never saw the invalid value')
  })

  t.test('a handler that keeps failing is retried, then its message is dead-lettered; the next one is handled', async (t) => {
    const original = '{ "n": 1,  "spaced": "as sent" }'
    await broker.pub(['-q', '1', '-t', 'poison', '-m', original])
    await broker.pub(['-q', '1', '-t', 'poison', '-m', '{"n":2}'])
    const letter = await next('dlq/poison')
    t.equal(letter.payload.toString(), original, 'the original bytes, not a re-encoding')
    const props = letter.packet.properties?.userProperties as Record<string, string>
    t.equal(props.error, 'boom: cannot handle n=1')
    t.equal(props.attempts, '3')
    await got.poison.waitFor((items) => items.length === 4, 10_000, 'the next message')
    t.same(got.poison.items.map((m) => `${(m.value as { n: number }).n}/${m.attempt}`), ['1/1', '1/2', '1/3', '2/1'])
    t.equal(app.rooms.counters.streamMessages.mqtt.dead_lettered >= 4, true, 'dead letters are counted')
    t.equal(app.rooms.counters.streamMessages.mqtt.retried >= 2, true, 'retries are counted')
  })

  t.test('on the wire: no PUBACK leaves before the handler is done, and PINGREQs keep the connection alive meanwhile', async (t) => {
    await broker.pub(['-q', '1', '-t', 'slow', '-m', '{"slow":true}'])
    await got.slow.next()
    const delivered = wire.packets.items.findLast((p) => p.dir === 'down' && p.type === 3 && p.topic === 'slow') as { id: number, connection: number }
    t.ok(delivered, 'the broker delivered it through the proxy')
    const after = wire.packets.items.length
    // a positive signal: the consumer sends PINGREQs on the same connection while the handler waits
    // two of them: MQTT.js alone sends one, then gives the connection up half a keepalive later; the gateway's beat keeps it
    await wire.packets.waitFor((items) => items.slice(after).filter((p) => p.connection === delivered.connection && p.dir === 'up' && p.type === 12).length >= 2, 10_000, 'two PINGREQs')
    const ackedEarly = wire.packets.items.some((p) => p.connection === delivered.connection && p.dir === 'up' && p.type === 4 && p.id === delivered.id)
    t.notOk(ackedEarly, 'no PUBACK for it yet: TCP keeps the order, the PINGREQ went after anything sent before')
    release()
    await wire.packets.waitFor((items) => items.some((p) => p.connection === delivered.connection && p.dir === 'up' && p.type === 4 && p.id === delivered.id), 10_000, 'its PUBACK')
    t.ok(app.mqtt.isReady(), 'the connection lived through the handler')
  })

  t.test('emit publishes JSON with QoS 1 and properties; a retained emit is kept for later subscribers', async (t) => {
    t.same(await app.mqtt.emit('echo/1', { hello: 'world' }, { properties: { userProperties: { source: 'test' } } }), { topic: 'echo/1', qos: 1 })
    const echo = await next('echo/1')
    t.same(JSON.parse(echo.payload.toString()), { hello: 'world' })
    t.same(echo.packet.properties?.userProperties, { source: 'test' })
    await app.mqtt.emit('retained/state', { on: true }, { retain: true, qos: 0 })
    const late = await mqtt.connectAsync(broker.url, { protocolVersion: 5 })
    t.after(() => late.endAsync(true))
    const retained = new Promise<Buffer>((resolve) => late.on('message', (_topic, payload) => { resolve(payload) }))
    await late.subscribeAsync('retained/state')
    t.same(JSON.parse((await retained).toString()), { on: true })
    await t.rejects(app.mqtt.emit('bad/+', {}), { code: 'GW_STREAM_INVALID', statusCode: 400 })
    await t.rejects(app.mqtt.emit('x', {}, { qos: 2 as 1 }), { code: 'GW_STREAM_INVALID' })
  })
})
