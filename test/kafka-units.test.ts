import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { EventEmitter } from 'node:events'
import Fastify from 'fastify'
import { z } from 'zod'
import { compileRoomTemplate, parseBridgeRules, TemplateError, isTopicName } from '../lib/kafka/template.js'
import { MessageProcessor, textHeaders, type DeadLetter, type ProcessorOptions, type RawMessage } from '../lib/kafka/processor.js'
import { KafkaLifecycle, canConnect } from '../lib/kafka/lifecycle.js'
import { kafkaGateway } from '../plugins/kafka.js'
import { loadConfig } from '../lib/config.js'
import { buildApp } from '../server.js'
import { buildTestApp } from './helpers/app.js'
import { Inbox, waitUntil } from './helpers/kcat.js'

/** A loopback port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const quietLog = { warn () {}, error () {}, info () {} }

function processorWith (overrides: Partial<ProcessorOptions> = {}) {
  const letters: DeadLetter[] = []
  const published: Array<[string, string, unknown]> = []
  const processor = new MessageProcessor({
    retries: 2,
    retryBackoffMs: 1,
    dlqSuffix: '.dlq',
    publish: (room, event, data) => { published.push([room, event, data]) },
    deadLetter: async (letter) => { letters.push(letter) },
    log: quietLog,
    ...overrides
  })
  return { processor, letters, published }
}

function raw (topic: string, value: string | Buffer | null, extra: Partial<RawMessage> = {}): RawMessage {
  return { topic, partition: 1, offset: '7', key: null, value: typeof value === 'string' ? Buffer.from(value) : value, ...extra }
}

const live = () => new AbortController().signal

t.test('room templates', async (t) => {
  t.test('fill fields from the JSON value, dotted paths and numbers included', async (t) => {
    t.equal(compileRoomTemplate('user:{userId}').fill({ userId: 'u-1' }), 'user:u-1')
    t.equal(compileRoomTemplate('org:{org.id}:team:{ team }').fill({ org: { id: 42 }, team: 'a' }), 'org:42:team:a')
    t.equal(compileRoomTemplate('orders').fill(null), 'orders', 'a template without fields is one room')
    t.same(compileRoomTemplate('a:{x}:{y.z}').fields, ['x', 'y.z'])
  })

  t.test('a value that cannot fill the template is a TemplateError naming the field', async (t) => {
    const template = compileRoomTemplate('user:{user.id}')
    t.throws(() => template.fill({ user: {} }), new TemplateError('field user.id is missing from the message value'))
    t.throws(() => template.fill('text'), /field user\.id is missing/)
    t.throws(() => template.fill({ user: { id: { nested: 1 } } }), /must be a non-empty string or a number, got object/)
    t.throws(() => template.fill({ user: { id: '' } }), /got an empty string/)
    t.throws(() => template.fill({ user: { id: null } }), /got null/)
    t.throws(() => template.fill({ user: { id: [1] } }), /got an array/)
    t.throws(() => template.fill({ user: { id: Number.NaN } }), /got number/)
    t.throws(() => template.fill({ user: { id: 'has space' } }), /room "user:has space" from template "user:\{user.id\}" is not a legal room name/)
    t.throws(() => template.fill({ user: { id: 'x'.repeat(130) } }), TemplateError)
  })

  t.test('an unusable template is refused when it is compiled', async (t) => {
    t.throws(() => compileRoomTemplate(''), /non-empty/)
    t.throws(() => compileRoomTemplate('user {id}'), /characters a room name cannot have/)
    t.throws(() => compileRoomTemplate('user:{id'), /characters a room name cannot have/)
    t.throws(() => compileRoomTemplate('user:{}'), /is not a field path/)
    t.throws(() => compileRoomTemplate('user:{a..b}'), /is not a field path/)
    t.throws(() => compileRoomTemplate('x'.repeat(129)), /is not a legal room name/)
  })

  t.test('bridge rules come as topic=template strings, pairs or an object', async (t) => {
    t.same(parseBridgeRules(['a=user:{id}', ' b = room ']), [{ topic: 'a', template: 'user:{id}' }, { topic: 'b', template: 'room' }])
    t.same(parseBridgeRules([['a', 'x:{id}']]), [{ topic: 'a', template: 'x:{id}' }])
    t.same(parseBridgeRules({ a: 'one', b: ['two', 'three:{n}'] }), [
      { topic: 'a', template: 'one' }, { topic: 'b', template: 'two' }, { topic: 'b', template: 'three:{n}' }
    ])
    t.throws(() => parseBridgeRules(['no-equals']), /must be topic=roomTemplate/)
    t.throws(() => parseBridgeRules(['bad topic=room']), /is not a Kafka topic name/)
    t.throws(() => parseBridgeRules({ t: 'bad room' }), /characters a room name cannot have/)
    t.notOk(isTopicName('..'))
    t.ok(isTopicName('a.b_c-1'))
  })
})

t.test('message processing', async (t) => {
  t.test('a message no handler or bridge wants is ignored', async (t) => {
    const { processor, letters } = processorWith()
    processor.on('other', () => { throw new Error('not me') })
    t.equal(await processor.process(raw('topic', 'not even json'), live()), 'ignored')
    t.same(letters, [])
  })

  t.test('a RegExp handler never sees dead-letter topics; a handler of the exact name does', async (t) => {
    const { processor } = processorWith()
    const seen: string[] = []
    processor.on(/^orders/g, (m) => { seen.push(`re ${m.topic}`) })
    processor.on('orders.dlq', (m) => { seen.push(`exact ${m.topic}`) })
    await processor.process(raw('orders', '{}'), live())
    await processor.process(raw('orders', '{}'), live())
    await processor.process(raw('orders.dlq', '{}'), live())
    t.same(seen, ['re orders', 're orders', 'exact orders.dlq'], 'a global RegExp matches every time')
  })

  t.test('subscriptions list each topic once, bridges included, then the RegExps', async (t) => {
    const { processor } = processorWith()
    processor.on('a', () => {})
    processor.on('a', () => {})
    processor.on(/^b/, () => {})
    processor.on(/^b/, () => {})
    processor.bridge('c', 'room')
    processor.bridge('a', 'room')
    t.same(processor.subscriptions().map(String), ['a', 'c', '/^b/'])
    t.equal(processor.dlqTopic('a'), 'a.dlq')
  })

  t.test('a tombstone (null value) reaches handlers as null, with text key and headers', async (t) => {
    const { processor } = processorWith()
    const inbox = new Inbox<unknown>()
    processor.on('t', (m) => { inbox.push(m) })
    t.equal(await processor.process(raw('t', null, { key: Buffer.from('k'), headers: { one: Buffer.from('1'), many: ['a', Buffer.from('b')], gone: undefined } }), live()), 'handled')
    t.match(await inbox.next(), { value: null, key: 'k', headers: { one: '1', many: ['a', 'b'] }, topic: 't', partition: 1, offset: '7', attempt: 1 })
    t.same(textHeaders(undefined), {})
  })

  t.test('every matching handler and bridge runs; one dead letter reports the failures', async (t) => {
    const { processor, letters, published } = processorWith({ retries: 0 })
    const ran: string[] = []
    processor.on('t', () => { ran.push('ok') })
    processor.on('t', () => { throw new Error('first') })
    processor.on('t', () => { throw 'a string' })
    processor.bridge('t', 'room:{id}')
    t.equal(await processor.process(raw('t', '{"id":3}', { timestamp: '1700000000000' }), live()), 'dead-lettered')
    t.same(ran, ['ok'])
    t.same(published, [['room:3', 't', { id: 3 }]])
    t.equal(letters.length, 1)
    t.equal(letters[0].headers.error, 'first (and 1 more failure)')
    t.equal(letters[0].headers['error-type'], 'handler')
    t.equal(letters[0].headers.attempts, '1')
    t.equal(letters[0].headers['original-timestamp'], '1700000000000')
    processor.on('t', () => { throw new Error('third') })
    await processor.process(raw('t', '{"id":3}'), live())
    t.equal(letters[1].headers.error, 'first (and 2 more failures)')
  })

  t.test('a room publish that fails is retried, then dead-lettered', async (t) => {
    let failures = 1
    const { processor, letters } = processorWith({
      publish: () => { if (failures-- > 0) throw new Error('bus down') }
    })
    processor.bridge('t', 'room')
    t.equal(await processor.process(raw('t', '{}'), live()), 'handled', 'one failure, then the retry works')
    failures = 10
    t.equal(await processor.process(raw('t', '{}'), live()), 'dead-lettered')
    t.equal(letters[0].headers['error-type'], 'bridge')
    t.equal(letters[0].headers.attempts, '3')
  })

  t.test('a long error is cut in its header', async (t) => {
    const { processor, letters } = processorWith({ retries: 0 })
    processor.on('t', () => { throw new Error('x'.repeat(5000)) })
    await processor.process(raw('t', '{}', { headers: { error: 'an older error', keep: 'me' } }), live())
    t.equal((letters[0].headers.error as string).length, 1000)
    t.equal(letters[0].headers.keep, 'me')
  })

  t.test('closing during a retry wait abandons the message: no dead letter, not handled', async (t) => {
    const controller = new AbortController()
    const { processor, letters } = processorWith({ retries: 5, retryBackoffMs: 60_000 })
    processor.on('t', () => {
      controller.abort()
      throw new Error('fails')
    })
    t.equal(await processor.process(raw('t', '{}'), controller.signal), 'abandoned')
    processor.bridge('u', 'room')
    t.equal(await processor.process(raw('u', '{}'), controller.signal), 'handled', 'a first try still runs')
    t.same(letters, [])
  })

  t.test('a bridge whose publish keeps failing is abandoned on close too', async (t) => {
    const controller = new AbortController()
    const { processor } = processorWith({ retries: 5, retryBackoffMs: 60_000, publish: () => { controller.abort(); throw new Error('down') } })
    processor.bridge('t', 'room')
    t.equal(await processor.process(raw('t', '{}'), controller.signal), 'abandoned')
  })

  t.test('when the dead letter cannot be written, processing rejects (the message is not committed)', async (t) => {
    const { processor } = processorWith({ deadLetter: async () => { throw new Error('dlq down') } })
    processor.on('t', () => {})
    await t.rejects(processor.process(raw('t', 'not json'), live()), /dlq down/)
  })

  t.test('a schema output is what the handler gets', async (t) => {
    const { processor } = processorWith()
    const inbox = new Inbox<unknown>()
    processor.on('t', (m) => { inbox.push(m.value) }, z.object({ n: z.coerce.number() }))
    await processor.process(raw('t', '{"n":"5","x":1}'), live())
    t.same(await inbox.next(), { n: 5 })
  })
})

t.test('the connection lifecycle (a stand-in for kafkajs)', async (t) => {
  /** Just enough of a kafkajs client: instrumentation events, connect/run/disconnect, and knobs for failures. */
  function fakeKafka () {
    const calls: string[] = []
    const consumers: Array<EventEmitter & { emitEvent: (name: string, payload?: object) => void }> = []
    let producerConnectFailures = 0
    const events = { CONNECT: 'connect', DISCONNECT: 'disconnect', GROUP_JOIN: 'group_join', REQUEST: 'request', HEARTBEAT: 'heartbeat', FETCH: 'fetch', STOP: 'stop', CRASH: 'crash' }
    const emitterOf = () => {
      const emitter = new EventEmitter() as EventEmitter & { emitEvent: (name: string, payload?: object) => void }
      emitter.emitEvent = (name, payload = {}) => { emitter.emit(name, { payload }) }
      return emitter
    }
    const producerEvents = emitterOf()
    const kafka = {
      producer: () => ({
        events,
        on: (name: string, fn: (e: unknown) => void) => { producerEvents.on(name, fn); return () => { producerEvents.off(name, fn) } },
        connect: async () => {
          calls.push('producer.connect')
          if (producerConnectFailures-- > 0) throw new Error('refused')
          producerEvents.emitEvent(events.CONNECT)
        },
        disconnect: async () => { calls.push('producer.disconnect'); producerEvents.emitEvent(events.DISCONNECT) },
        send: async ({ topic }: { topic: string }) => [{ topicName: topic, partition: 0, errorCode: 0, baseOffset: '0' }]
      }),
      consumer: (config: { retry?: { restartOnFailure?: () => Promise<boolean> } }) => {
        const emitter = emitterOf()
        consumers.push(emitter)
        calls.push(`consumer.new restart=${String(config.retry?.restartOnFailure !== undefined)}`)
        return {
          events,
          on: (name: string, fn: (e: unknown) => void) => { emitter.on(name, fn); return () => { emitter.off(name, fn) } },
          connect: async () => { calls.push('consumer.connect') },
          subscribe: async ({ topics }: { topics: unknown[] }) => { calls.push(`subscribe ${topics.map(String).join(',')}`) },
          run: async () => { calls.push('run'); emitter.emitEvent(events.GROUP_JOIN, { memberId: 'm', memberAssignment: {} }) },
          disconnect: async () => { calls.push('consumer.disconnect'); emitter.emitEvent(events.DISCONNECT) }
        }
      }
    }
    return { kafka, calls, consumers, events, failProducerConnect (n: number) { producerConnectFailures = n } }
  }

  function lifecycleWith (fake: ReturnType<typeof fakeKafka>, subscribe = true, brokers: (() => Promise<string[]>) | null = null) {
    const { processor } = processorWith()
    if (subscribe) processor.on('jobs', () => {})
    const lifecycle = new KafkaLifecycle({
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately wrong or partial input
      kafka: fake.kafka as any,
      groupId: 'g',
      consumer: { sessionTimeout: 60_000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 },
      fromBeginning: false,
      processor,
      log: quietLog,
      brokers,
      restartBackoffMs: 1,
      restartBackoffMaxMs: 5
    })
    t.after(() => lifecycle.stop())
    return lifecycle
  }

  t.test('a crashed consumer is replaced, and readiness follows it down and up', async (t) => {
    const fake = fakeKafka()
    const lifecycle = lifecycleWith(fake)
    t.notOk(lifecycle.isReady(), 'not ready before start')
    lifecycle.start()
    lifecycle.start()
    await waitUntil(() => lifecycle.isReady(), 5000, 'the first consumer joined')
    t.same(fake.calls.slice(0, 5), ['producer.connect', 'consumer.new restart=true', 'consumer.connect', 'subscribe jobs', 'run'])
    fake.consumers[0].emitEvent(fake.events.CRASH, { error: new Error('lost the coordinator') })
    t.notOk(lifecycle.isReady(), 'not ready once the consumer crashed')
    await waitUntil(() => fake.consumers.length === 2 && lifecycle.isReady(), 5000, 'a second consumer joined')
    t.ok(fake.calls.includes('consumer.disconnect'), 'the crashed consumer was disconnected')
    await lifecycle.stop()
    t.notOk(lifecycle.isReady())
    t.equal(fake.calls.at(-1), 'producer.disconnect')
    await t.rejects(lifecycle.send('t', [{ value: 'x' }]), { code: 'GW_KAFKA_UNAVAILABLE' })
  })

  t.test('a failed connect is retried with backoff until it works', async (t) => {
    const fake = fakeKafka()
    fake.failProducerConnect(2)
    const lifecycle = lifecycleWith(fake)
    await t.rejects(lifecycle.send('t', [{ value: 'x' }]), { code: 'GW_KAFKA_UNAVAILABLE', message: /not connected/ })
    lifecycle.start()
    await waitUntil(() => lifecycle.isReady(), 5000, 'connected on the third try')
    t.equal(fake.calls.filter((c) => c === 'producer.connect').length, 3)
    t.same(await lifecycle.send('t', [{ value: 'x' }]), [{ topicName: 't', partition: 0, errorCode: 0, baseOffset: '0' }])
  })

  t.test('without handlers or bridges only the producer runs, and readiness is the producer\'s', async (t) => {
    const fake = fakeKafka()
    const lifecycle = lifecycleWith(fake, false)
    lifecycle.start()
    await waitUntil(() => lifecycle.isReady(), 5000, 'the producer connected')
    await lifecycle.stop()
    t.notOk(fake.calls.some((c) => c.startsWith('consumer')), 'no consumer was made')
  })

  t.test('an unreachable broker list keeps it retrying without calling kafkajs', async (t) => {
    const fake = fakeKafka()
    const port = await closedPort()
    let asked = 0
    const lifecycle = lifecycleWith(fake, true, async () => { asked++; return [`127.0.0.1:${port}`] })
    lifecycle.start()
    await waitUntil(() => asked >= 3, 5000, 'the broker list was asked three times')
    t.notOk(lifecycle.isReady())
    t.same(fake.calls, [], 'kafkajs was never asked to connect')
    await lifecycle.stop()
  })

  t.test('canConnect: a TCP check of one broker address', async (t) => {
    const server = createServer((socket) => socket.destroy())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise((resolve) => server.close(resolve)))
    const { port } = server.address() as AddressInfo
    t.equal(await canConnect(`127.0.0.1:${port}`, 1000, live()), true)
    t.equal(await canConnect(`127.0.0.1:${await closedPort()}`, 1000, live()), false)
    t.equal(await canConnect('no-port', 1000, live()), false)
    t.equal(await canConnect('host:99999', 1000, live()), false)
    const aborted = new AbortController()
    aborted.abort()
    t.equal(await canConnect(`127.0.0.1:${port}`, 1000, aborted.signal), false)
    // 192.0.2.1 (TEST-NET-1) is never routed: the connect hangs until the abort
    const later = new AbortController()
    const pending = canConnect('192.0.2.1:9092', 10_000, later.signal)
    later.abort()
    t.equal(await pending, false)
    t.equal(await canConnect('192.0.2.1:9092', 1, live()), false, 'or until the timeout')
  })
})

t.test('the plugin', async (t) => {
  t.test('invalid options are refused at register, naming the option', async (t) => {
    const cases: Array<[object, RegExp]> = [
      [{}, /brokers/],
      [{ brokers: [] }, /brokers: must list at least one broker/],
      [{ brokers: ['localhost'] }, /brokers\.0: each broker must be host:port/],
      [{ brokers: 'localhost:9092' }, /brokers: must be a list of host:port or a function/],
      [{ brokers: ['b:9092'], heartbeatInterval: 5000, sessionTimeout: 5000 }, /heartbeatInterval: must be lower than sessionTimeout/],
      [{ brokers: ['b:9092'], kafkaConfig: { brokers: ['x:1'] } }, /kafkaConfig: must not set brokers or clientId/],
      [{ brokers: ['b:9092'], kafkaConfig: [] }, /kafkaConfig: must be an object/],
      [{ brokers: ['b:9092'], bridge: ['t=bad room'] }, /bridge: room template "bad room"/],
      [{ brokers: ['b:9092'], bridge: 'x' }, /bridge: must be a list/],
      [{ brokers: ['b:9092'], dlqSuffix: '/dlq' }, /dlqSuffix/],
      [{ brokers: ['b:9092'], retries: -1 }, /retries/],
      [{ brokers: ['b:9092'], topic: 'typo' }, /unknown option "topic"/]
    ]
    for (const [options, message] of cases) {
      const app = Fastify()
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately wrong or partial input
      await t.rejects(async () => { await app.register(kafkaGateway, options as any) }, { code: 'GW_INVALID_OPTIONS', message }, JSON.stringify(options))
      await app.close()
    }
  })

  t.test('another decorator name: app.kafka stays free for another Kafka plugin', async (t) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(kafkaGateway, { brokers: [`127.0.0.1:${await closedPort()}`], decorator: 'events' })
    const events = (app as unknown as { events: typeof app.kafka }).events
    t.equal(app.hasDecorator('kafka'), false)
    t.type(events.on, 'function')
    t.notOk(events.isReady())
    await t.rejects(async () => { await Fastify().register(kafkaGateway, { brokers: ['a:1'], decorator: 'not ok' }).ready() }, { code: 'GW_INVALID_OPTIONS', message: /decorator: must be a JavaScript identifier/ })
  })

  t.test('handlers and bridges are checked when they are added, and refused once the app is ready', async (t) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(kafkaGateway, { brokers: [`127.0.0.1:${await closedPort()}`] })
    t.throws(() => app.kafka.on('bad topic', () => {}), { code: 'GW_KAFKA_INVALID_TOPIC' })
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately wrong or partial input
    t.throws(() => app.kafka.on('t', 'nope' as any), /handler must be a function/)
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately wrong or partial input
    t.throws(() => app.kafka.on('t', () => {}, { schema: {} as any }), /schema must be a zod schema/)
    t.throws(() => app.kafka.bridge('bad topic', 'room'), { code: 'GW_KAFKA_INVALID_TOPIC' })
    t.throws(() => app.kafka.bridge('t', 'bad room'), /characters a room name cannot have/)
    app.kafka.on('t', () => {})
    app.kafka.bridge('t', 'room:{id}')
    await t.rejects(app.kafka.emit('t', {}), { code: 'GW_KAFKA_UNAVAILABLE', statusCode: 503, message: /starts when the app is ready/ })
    await app.ready()
    t.throws(() => app.kafka.on('t', () => {}), { code: 'GW_KAFKA_TOO_LATE', message: /app\.kafka\.on\(\) must be called before the app is ready/ })
    t.throws(() => app.kafka.bridge('t', 'room'), { code: 'GW_KAFKA_TOO_LATE' })
    await t.rejects(app.kafka.emit('bad topic', {}), { code: 'GW_KAFKA_INVALID_TOPIC', statusCode: 400 })
    await t.rejects(app.kafka.emit('t', { a: 1 }, { key: 'k', headers: { h: 'v' }, partition: 0 }), { code: 'GW_KAFKA_UNAVAILABLE', statusCode: 503 })
    t.notOk(app.kafka.isReady())
  })

  t.test('/ready answers 503 naming kafka while no broker is reachable, and close does not wait for one', async (t) => {
    const port = await closedPort()
    const { app, logs } = await buildTestApp({ GATEWAYS: 'kafka', KAFKA_BROKERS: `127.0.0.1:${port}`, KAFKA_BRIDGE: 'user.notification=user:{userId}' })
    t.after(() => app.close())
    await waitUntil(() => logs.text().includes('kafka: cannot connect; retrying'), 10_000, 'a failed connect was logged')
    const ready = await app.inject('/ready')
    t.equal(ready.statusCode, 503)
    t.same(ready.json(), { status: 'unavailable', failing: ['kafka'] })
    t.equal((await app.inject('/health')).statusCode, 200)
    await t.resolves(app.close(), 'closes while the broker is unreachable')
  })

  t.test('server.ts refuses inconsistent Kafka settings with one line naming the variable', async (t) => {
    const env = { GATEWAYS: 'kafka', KAFKA_BROKERS: 'localhost:9092', LOG_LEVEL: 'silent' }
    await t.rejects(buildApp(loadConfig({ ...env, KAFKA_SESSION_TIMEOUT_MS: '3000', KAFKA_HEARTBEAT_MS: '3000' })),
      { code: 'GW_CONFIG', message: 'KAFKA_HEARTBEAT_MS: must be lower than KAFKA_SESSION_TIMEOUT_MS (about a third of it)' })
    await t.rejects(buildApp(loadConfig({ ...env, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: 'secret' })),
      { code: 'GW_CONFIG', message: 'KAFKA_SASL_USERNAME: is required with KAFKA_SASL_MECHANISM' })
    await t.rejects(buildApp(loadConfig({ ...env, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'me' })),
      { code: 'GW_CONFIG', message: 'KAFKA_SASL_PASSWORD: is required with KAFKA_SASL_MECHANISM' })
    t.throws(() => loadConfig({ ...env, KAFKA_SSL: 'maybe' }), { message: 'KAFKA_SSL: must be true or false' })
    t.throws(() => loadConfig({ GATEWAYS: 'kafka' }), { message: 'KAFKA_BROKERS: is required by the kafka gateway' })
  })

  t.test('server.ts starts with SSL and SASL settings and never logs the SASL password', async (t) => {
    const port = await closedPort()
    const { app, logs } = await buildTestApp({
      GATEWAYS: 'kafka', KAFKA_BROKERS: `127.0.0.1:${port}`, KAFKA_SSL: 'true', KAFKA_FROM_BEGINNING: 'true',
      KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'svc', KAFKA_SASL_PASSWORD: 'hunter2-secret'
    })
    t.after(() => app.close())
    await waitUntil(() => logs.text().includes('kafka: cannot connect; retrying'), 10_000, 'a failed connect was logged')
    t.equal((await app.inject('/ready')).statusCode, 503)
    await app.close()
    t.notMatch(logs.text(), /hunter2-secret/)
  })
})
