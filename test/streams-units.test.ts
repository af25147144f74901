import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { kafkaTopics, mqttTopicProblem, mqttTopics, natsSubjectProblem, natsSubjects, redisStreamKeys } from '../lib/streams/patterns.js'
import { compileRoomTemplate, parseRules } from '../lib/streams/template.js'
import { StreamProcessor, type Delivery, type Failure, type ProcessorOptions } from '../lib/streams/processor.js'
import { backoffDelay, errorText, keepAlive, restartLoop, settlesBy, sleep } from '../lib/streams/async.js'
import { createStreamApi } from '../lib/streams/api.js'
import { mqttGateway } from '../plugins/mqtt.js'
import { natsGateway } from '../plugins/nats.js'
import { redisStreamsGateway } from '../plugins/redis-streams.js'
import { Inbox } from './helpers/streams.js'

const quiet = { warn () {}, error () {} }
const live = () => new AbortController().signal

t.test('pattern syntaxes', async (t) => {
  t.test('MQTT filters: + is one level, # the rest and its parent, wildcards never reach $ topics', async (t) => {
    const mqtt = mqttTopics()
    const f = mqtt.compile('a/+/c/#')
    t.same(f.match('a/b/c'), ['b'])
    t.same(f.match('a/b/c/d/e'), ['b'])
    t.equal(f.match('a/b/x'), null)
    t.equal(f.match('a/b'), null)
    t.equal(mqtt.compile('+/x').match('$SYS/x'), null)
    t.equal(mqtt.compile('#').match('$SYS/x'), null)
    t.same(mqtt.compile('$SYS/+').match('$SYS/x'), ['x'])
    t.same(mqtt.compile('a/+').match('a/'), [''], 'an empty level is a level')
    t.equal(mqtt.compile('a/b').match('a/b/c'), null)
    t.equal(mqtt.wildcards?.('a/+/+/#'), 2)
    t.equal(mqtt.catchAll, '#')
    for (const [filter, problem] of [['', /1 to 65535 bytes/], ['a/#/b', /# must be a whole level/], ['a/b#', /# must be a whole level/], ['a/b+', /\+ must be a whole level/], ['$share/g/a', /shared subscription/], ['a\u0000b', /control characters/]] as const) {
      t.match(mqtt.problem(filter), problem, JSON.stringify(filter))
    }
    t.equal(mqtt.problem('a/+/#'), null)
    t.equal(mqttTopicProblem('a/b'), null)
    t.match(mqttTopicProblem('a/+'), /wildcards/)
    t.match(mqttTopicProblem(''), /1 to 65535/)
    t.match(mqttTopicProblem('a\nb'), /control/)
    t.ok(mqtt.isDeadLetter('dlq/a'))
    t.equal(mqtt.deadLetterOf('a/b'), 'dlq/a/b')
  })

  t.test('NATS subjects: * is one token, > one or more (last only)', async (t) => {
    const nats = natsSubjects()
    t.same(nats.compile('a.*.c.>').match('a.b.c.d.e'), ['b'])
    t.equal(nats.compile('a.*.c.>').match('a.b.c'), null, '> needs a token')
    t.equal(nats.compile('a.*').match('a.b.c'), null)
    t.same(nats.compile('>').match('x.y'), [])
    t.equal(nats.compile('a.b').match('a.c'), null)
    t.equal(nats.problem('a.>.b') !== null, true)
    t.equal(nats.problem('a..b') !== null, true)
    t.equal(nats.problem('') !== null, true)
    t.equal(nats.problem('a.*.>'), null)
    t.match(natsSubjectProblem('a.*', false), /without spaces or wildcards/)
    t.equal(natsSubjectProblem('a.b', false), null)
    t.equal(nats.deadLetterOf('a.b'), 'dlq.a.b')
  })

  t.test('Kafka topics and Redis stream keys are exact names', async (t) => {
    t.same(kafkaTopics().compile('a').match('a'), [])
    t.equal(kafkaTopics().compile('a').match('b'), null)
    t.match(kafkaTopics().problem('a b'), /Kafka topic name/)
    t.equal(redisStreamKeys().problem('orders:{eu}'), null)
    t.match(redisStreamKeys().problem('a b'), /stream key/)
    t.ok(redisStreamKeys().isDeadLetter('orders.dlq'))
    t.equal(redisStreamKeys().wildcards, undefined)
  })
})

t.test('room templates with wildcard values', async (t) => {
  t.equal(compileRoomTemplate('device:{1}:{2}', { wildcards: 2 }).fill({}, ['d1', 'x']), 'device:d1:x')
  t.equal(compileRoomTemplate('org:{1}:{user.id}', { wildcards: 1 }).fill({ user: { id: 7 } }, ['o']), 'org:o:7')
  t.throws(() => compileRoomTemplate('device:{2}', { wildcards: 1 }), /\{2\} needs 2 wildcards, the pattern has 1/)
  t.equal(compileRoomTemplate('x:{1}').fill({ 1: 'field' }), 'x:field', 'without wildcards {1} is a JSON field (Kafka)')
  t.throws(() => compileRoomTemplate('device:{1}', { wildcards: 1 }).fill({}, ['has space']), /not a legal room name/)
  t.throws(() => compileRoomTemplate('device:{1}', { wildcards: 1 }).fill({}, ['']), /wildcard \{1\} is empty/, 'an empty MQTT level fills nothing')
  t.throws(() => compileRoomTemplate('device:{1}', { wildcards: 1 }).fill({}), /wildcard \{1\} is empty/)
  const mqtt = mqttTopics()
  t.same(parseRules(['devices/+/t=device:{1}'], mqtt), [{ topic: 'devices/+/t', template: 'device:{1}' }])
  t.throws(() => parseRules(['no-equals'], mqtt), /must be topicFilter=roomTemplate/)
  t.throws(() => parseRules(['a/#/b=room'], mqtt), /bridge topic filter "a\/#\/b" # must be a whole level/)
  t.throws(() => parseRules(['a/+=room:{2}'], mqtt), /needs 2 wildcards/)
})

t.test('the processor in redelivery mode (NATS, Redis Streams)', async (t) => {
  interface F { n: number }
  function setup (overrides: Partial<ProcessorOptions<F, null>> = {}) {
    const letters: Array<[Failure, string]> = []
    const counted: string[] = []
    const processor = new StreamProcessor<F, null>({
      broker: 'test',
      syntax: natsSubjects(),
      mode: 'redeliver',
      retries: 2,
      retryBackoffMs: 100,
      publish: () => {},
      deadLetter: async (_d, failure, destination) => { letters.push([failure, destination]) },
      log: quiet,
      count: (outcome) => { counted.push(outcome) },
      ...overrides
    })
    return { processor, letters, counted }
  }
  const delivery = (source: string, payload: string | null, attempt: number, extra: Partial<Delivery<F, null>> = {}): Delivery<F, null> =>
    ({ source, payload: payload === null ? null : Buffer.from(payload), fields: { n: 1 }, where: { source }, attempt, id: `${source}:1`, raw: null, ...extra })

  t.test('a failure asks for a later delivery until the last attempt, then dead-letters; routes that succeeded are not run again', async (t) => {
    const { processor, letters, counted } = setup()
    const ran: string[] = []
    processor.on('jobs', () => { ran.push('ok') })
    processor.on('jobs', ({ attempt }) => { ran.push(`fails ${attempt}`); throw new Error('nope') })
    t.equal(await processor.process(delivery('jobs', '{}', 1), live()), 'retry')
    t.equal(processor.retryDelay(1), 100)
    t.equal(processor.retryDelay(2), 200)
    t.equal(await processor.process(delivery('jobs', '{}', 2), live()), 'retry')
    t.equal(await processor.process(delivery('jobs', '{}', 3), live()), 'dead-lettered')
    t.same(ran, ['ok', 'fails 1', 'fails 2', 'fails 3'], 'the handler that succeeded ran once')
    t.match(letters[0], [{ type: 'handler', error: 'nope', attempts: 3 }, 'dlq.jobs'])
    t.same(counted, ['retried', 'retried', 'dead_lettered'])
  })

  t.test('a message delivered more often than the retries allow is dead-lettered without running', async (t) => {
    const { processor, letters } = setup()
    processor.on('jobs', () => { t.fail('not run') })
    t.equal(processor.maxDeliveries, 3)
    t.equal(await processor.process(delivery('jobs', '{}', 4), live()), 'dead-lettered')
    t.match(letters[0][0], { type: 'deliveries', error: /delivered 4 times without being acknowledged/, attempts: 3 })
  })

  t.test('a permanent failure is dead-lettered at once; a handler succeeding later is handled', async (t) => {
    const { processor, letters } = setup()
    processor.on('s', () => {}, z.object({ id: z.string() }))
    t.equal(await processor.process(delivery('s', '{"id":1}', 1), live()), 'dead-lettered')
    t.equal(letters[0][0].type, 'schema')
    const flaky = setup()
    flaky.processor.on('f', ({ attempt }) => { if (attempt < 2) throw new Error('once') })
    t.equal(await flaky.processor.process(delivery('f', '{}', 1), live()), 'retry')
    t.equal(await flaky.processor.process(delivery('f', '{}', 2), live()), 'handled')
    t.same(flaky.counted, ['retried', 'handled'])
  })

  t.test('the subscriptions a message came through choose the routes; dead letters need a pattern that names them', async (t) => {
    const { processor } = setup()
    const ran: string[] = []
    processor.on('a.*', () => { ran.push('a.*') })
    processor.on('a.b', () => { ran.push('a.b') })
    processor.on(/^a\./, () => { ran.push('regexp') })
    processor.on('dlq.>', () => { ran.push('dlq') })
    await processor.process(delivery('a.b', '{}', 1, { via: new Set(['a.b']) }), live())
    t.same(ran, ['a.b'])
    ran.length = 0
    await processor.process(delivery('a.b', '{}', 1, { via: new Set(['>']) }), live())
    t.same(ran, ['regexp'], 'RegExps belong to the catch-all subscription')
    ran.length = 0
    await processor.process(delivery('dlq.a.b', '{}', 1), live())
    t.same(ran, ['dlq'])
    t.ok(processor.wants('a.x'))
    t.notOk(processor.wants('b'))
    t.notOk(processor.wants('dlq.b') === false, 'dlq.> names dead letters')
  })

  t.test('an empty payload is null; a remembered progress is bounded', async (t) => {
    const { processor } = setup()
    const values = new Inbox<unknown>()
    processor.on('n', ({ value, attempt }) => { values.push(value); if (attempt === 1) throw new Error('again') })
    for (let i = 0; i < 10_005; i++) await processor.process(delivery('n', null, 1, { id: `n:${i}` }), live())
    t.equal(values.items.length, 10_005)
    t.equal(values.items[0], null)
  })
})

t.test('async helpers', async (t) => {
  t.equal(backoffDelay(100, 1000, 0), 100)
  t.equal(backoffDelay(100, 1000, 5), 1000)
  t.equal(errorText('plain'), 'plain')
  t.equal(errorText(new Error('')), 'Error')
  const aborted = new AbortController()
  aborted.abort()
  t.equal(await sleep(10, aborted.signal), false)
  t.equal(await settlesBy(new Promise(() => {}), Date.now() + 10), false)
  let beats = 0
  const stop = keepAlive(5, () => { beats++; if (beats === 1) throw new Error('a beat may fail'); return Promise.reject(new Error('or reject')) })
  for (let i = 0; i < 500 && beats < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  stop()
  t.ok(beats >= 2, 'a failing or rejecting beat does not stop the next')
  const stopLoop = new AbortController()
  const errors: number[] = []
  let rounds = 0
  await restartLoop({
    signal: stopLoop.signal,
    backoffMs: 1,
    backoffMaxMs: 2,
    round: async () => {
      rounds++
      if (rounds === 3) return true
      if (rounds === 5) stopLoop.abort()
      throw new Error('down')
    },
    onError: (_err, failures) => { errors.push(failures) }
  })
  t.same(errors, [1, 2, 2], 'a round that got going starts the backoff over; none is reported after the abort')
})

t.test('the shared API', async (t) => {
  const processor = new StreamProcessor<object, null>({ broker: 'x', syntax: mqttTopics(), mode: 'inline', retries: 0, retryBackoffMs: 0, publish: () => {}, deadLetter: async () => {}, log: quiet })
  const { api, freeze } = createStreamApi<object, object, string, null>({
    decorator: 'x',
    processor,
    tooLate: (method) => new Error(`late ${method}`),
    invalid: (target, problem) => new Error(`invalid ${target}: ${problem}`),
    targetProblem: mqttTopicProblem,
    emit: async (target) => target,
    isReady: () => true
  })
  t.throws(() => api.on(42 as unknown as string, () => {}), /invalid 42: must be a topic filter/)
  t.throws(() => api.on('a/#/b', () => {}), /# must be a whole level/)
  t.throws(() => api.on('a', 'nope' as never), /app\.x\.on: handler must be a function/)
  t.throws(() => api.on('a', () => {}, { schema: {} as never }), /schema must be a zod schema/)
  t.throws(() => api.bridge('a/+', 'room:{2}'), /needs 2 wildcards/)
  await t.rejects(api.emit(7 as unknown as string, {}), /must be a string/)
  t.equal(await api.emit('a/b', {}), 'a/b')
  t.ok(api.isReady())
  freeze()
  t.throws(() => api.on('a', () => {}), /late on/)
  t.throws(() => api.bridge('a', 'r'), /late bridge/)
})

t.test('plugin options are checked at register, naming the option', async (t) => {
  const cases: Array<[unknown, object, RegExp]> = [
    [mqttGateway, {}, /url/],
    [mqttGateway, { url: 'http://x' }, /url: must be an mqtt/],
    [mqttGateway, { url: 'mqtt://x', clientOptions: { clientId: 'a' } }, /clientOptions: must not set clientId/],
    [mqttGateway, { url: 'mqtt://x', client: {} }, /client: must be an MQTT\.js client/],
    [mqttGateway, { url: 'mqtt://x', bridge: ['a/#/b=room'] }, /bridge: bridge topic filter/],
    [mqttGateway, { url: 'mqtt://x', bridge: 'x' }, /bridge: must be a list of topicFilter=roomTemplate/],
    [mqttGateway, { url: 'mqtt://x', dlqPrefix: 'dlq' }, /dlqPrefix/],
    [mqttGateway, { url: 'mqtt://x', decorator: 'not ok' }, /decorator: must be a JavaScript identifier/],
    [natsGateway, {}, /servers: give servers or a connection/],
    [natsGateway, { servers: ['http://x'] }, /servers\.0: each server must be a nats/],
    [natsGateway, { servers: 'nats://x', connectionOptions: { servers: 'y' } }, /connectionOptions: must not set servers/],
    [natsGateway, { servers: 'nats://x', stream: 'bad name' }, /stream/],
    [natsGateway, { servers: 'nats://x', bridge: ['a..b=room'] }, /bridge topic|bridge subject/],
    [redisStreamsGateway, {}, /url: give a url or a redis client/],
    [redisStreamsGateway, { url: 'redis://x', redis: {} }, /redis: must be an ioredis client/],
    [redisStreamsGateway, { url: 'redis://x', bridge: ['a b=room'] }, /stream key/],
    [redisStreamsGateway, { url: 'redis://x', typo: 1 }, /unknown option "typo"/]
  ]
  for (const [plugin, options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(plugin as typeof mqttGateway, options as never) }, { code: 'GW_INVALID_OPTIONS', message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('before the app is ready: emits answer 503, handlers are checked, another decorator name works', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(mqttGateway, { url: 'mqtt://127.0.0.1:1', decorator: 'devices' })
  await app.register(natsGateway, { servers: 'nats://127.0.0.1:1' })
  await app.register(redisStreamsGateway, { url: 'redis://127.0.0.1:1' })
  const devices = (app as unknown as { devices: typeof app.mqtt }).devices
  t.equal(app.hasDecorator('mqtt'), false)
  await t.rejects(devices.emit('a', {}), { code: 'GW_STREAM_UNAVAILABLE', statusCode: 503, message: /starts when the app is ready/ })
  await t.rejects(app.nats.emit('a', {}), { code: 'GW_STREAM_UNAVAILABLE', message: /opens when the app is ready/ })
  await t.rejects(app.redisStreams.emit('a', {}), { code: 'GW_STREAM_UNAVAILABLE', message: /opens when the app is ready/ })
  t.throws(() => app.nats.on('a b', () => {}), { code: 'GW_STREAM_INVALID', statusCode: 400 })
  t.notOk(devices.isReady())
  await app.ready()
  t.throws(() => devices.on('a', () => {}), { code: 'GW_STREAM_TOO_LATE', message: /app\.devices\.on\(\) must be called before the app is ready/ })
  t.notOk(app.nats.isReady())
  t.notOk(app.redisStreams.isReady())
})
