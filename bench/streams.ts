// npm run bench -- streams (BENCH_STREAM_BROKERS=kafka,mqtt,nats,redis-streams to choose): messages per second from
// each broker to one ws member through server.ts, next to the broker's own client consuming the same messages with no
// work, in the same run; then the p99 message-to-socket latency at a steady 1,000 messages/s.
//
// This driver (the producer and the ws client) and the brokers run on CPU 1; server.ts and the baseline consumer on
// CPU 0 (taskset). Throughput, pre-loaded (the default, BENCH_STREAM_PRELOAD=0 turns it off): the consumer (the
// baseline process or server.ts) is stopped with SIGSTOP, COUNT messages are produced as fast as the broker takes
// them (pipelined), then SIGCONT lets it consume them with no producer running beside it (NATS excepted: see
// `preload` below). Without pre-loading the producer publishes while the consumer consumes. Either way the
// consumer's rate is counted from its first message to its last. Latency: one message per ms with its send time
// (this process's clock) in the payload, read back on the ws socket in this same process. BENCH_STREAM_PROFILE=<dir>
// writes a CPU profile of each server.ts there (bench/lib/cpu-summary.ts sums it up); BENCH_STREAM_LOGS=1 prints
// each server.ts's last warnings and errors.
import { spawn, spawnSync } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import mqtt from 'mqtt'
import { connect as natsConnect } from 'nats'
import { Redis } from 'ioredis'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { startNats } from '../test/helpers/nats.js'
import { startRedis } from '../test/helpers/redis.js'
import { startMockKafka } from '../test/helpers/kcat.js'
import { startInstance } from '../test/helpers/instance.js'
import { openWs } from '../test/helpers/ws-client.js'
import { percentile, median, fixed, int, machineNote } from './lib/stats.js'
import { ROOT } from './lib/proc.js'

const COUNT = Number(process.env.BENCH_STREAM_COUNT ?? 20_000)
const ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 3)
const RATE_SECONDS = Number(process.env.BENCH_STREAM_SECONDS ?? 5)
const PRELOAD = process.env.BENCH_STREAM_PRELOAD !== '0'
const PROFILE = process.env.BENCH_STREAM_PROFILE
/** kafkajs's fetch wait, the same for the gateway and the baseline: the mock answers a fetch only when it runs out */
const KAFKA_MAX_WAIT_MS = Number(process.env.BENCH_KAFKA_MAX_WAIT_MS ?? 10)
/** what comes within this many ms goes in one Kafka produce request (librdkafka's default linger.ms) */
const KAFKA_LINGER_MS = Number(process.env.BENCH_KAFKA_LINGER_MS ?? 5)
const PIN = process.env.BENCH_PIN !== '0' && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0
if (PIN) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' })

const cleanups: Array<() => unknown> = []
const fakeTest = {
  after: (fn: () => unknown) => { cleanups.push(fn) },
  skip: (reason: string) => { throw new Error(reason) },
  fail: (reason: string) => { throw new Error(reason) }
}
const payload = (i: number, sentNs = 0) => JSON.stringify({ i, sentNs, pad: 'x'.repeat(100) })

interface Broker {
  name: string
  url: string
  env: Record<string, string>
  /** what the gateway consumes; the baseline consumes `<base><round>` (never both at once: they must not share CPU 0) */
  gateway: string
  /**
   * Kafka: the gateway's target of each round ('warm' for the warm-up and the latency run), each a topic new to it as
   * the baseline's are: the mock's fetches slow down on a topic that holds many record batches
   */
  gatewayOf?: (round: number | 'warm') => string
  base: string
  /** settings the baseline consumer needs beyond the url */
  baseOptions?: Record<string, unknown>
  /** publishes `count` messages to `target` as fast as the broker takes them; `each` gives a payload per index */
  produce: (target: string, count: number, each: (i: number) => string) => Promise<void>
  /**
   * false: never pre-loaded. NATS: nats.js's fetch watches the server's idle heartbeats (every half expiry, 500 ms
   * here); a process stopped for a second misses two, re-pulls on resume, and closes the fetch's inbox once the first
   * pull's messages are in, so the second pull's batch comes back only after the ack wait (30 s). A stopped consumer
   * would measure that wait, not the consumer.
   */
  preload?: false
  /** one message now */
  one: (target: string, text: string) => Promise<unknown>
  close: () => Promise<void>
}

async function mqttBroker (): Promise<Broker> {
  const server = await startMosquitto(fakeTest as never) as NonNullable<Awaited<ReturnType<typeof startMosquitto>>>
  const client = await mqtt.connectAsync(server.url, { protocolVersion: 5, clientId: 'bench-producer' })
  return {
    name: 'mqtt',
    url: server.url,
    gateway: 'bench/g',
    base: 'bench/b',
    env: { GATEWAYS: 'ws,mqtt', MQTT_URL: server.url, MQTT_BRIDGE: 'bench/g=public:bench', MQTT_CLIENT_ID: `bench-gw-${Date.now()}` },
    produce: async (target, count, each) => {
      const window: Array<Promise<unknown>> = []
      for (let i = 0; i < count; i++) {
        window.push(client.publishAsync(target, each(i), { qos: 1 }))
        if (window.length >= 500) await Promise.all(window.splice(0))
      }
      await Promise.all(window)
    },
    one: (target, text) => client.publishAsync(target, text, { qos: 1 }),
    close: async () => { await client.endAsync(true) }
  }
}

async function kafkaBroker (): Promise<Broker> {
  const mock = await startMockKafka(fakeTest as never) as NonNullable<Awaited<ReturnType<typeof startMockKafka>>>
  const { Kafka, logLevel, Partitioners } = (await import('kafkajs')).default
  const kafka = new Kafka({ clientId: 'bench-producer', brokers: mock.brokers, logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const waiting: string[] = []
  let sending = false
  return {
    name: 'kafka',
    url: mock.brokers.join(','),
    gateway: 'bench-g',
    gatewayOf: (round) => `bench-g${round}`,
    base: 'bench-b',
    baseOptions: { maxWaitTimeInMs: KAFKA_MAX_WAIT_MS },
    env: {
      GATEWAYS: 'ws,kafka',
      KAFKA_BROKERS: mock.brokers.join(','),
      KAFKA_BRIDGE: ['warm', ...Array.from({ length: ROUNDS }, (_, round) => round)].map((round) => `bench-g${round}=public:bench`).join(','),
      KAFKA_GROUP_ID: `gw${Date.now()}`,
      // the topic is new to this run: from its beginning is every message, whenever the offsets get resolved
      KAFKA_FROM_BEGINNING: 'true',
      KAFKA_MAX_WAIT_MS: String(KAFKA_MAX_WAIT_MS)
    },
    produce: async (target, count, each) => {
      for (let i = 0; i < count; i += 500) {
        const messages = []
        for (let j = i; j < Math.min(count, i + 500); j++) messages.push({ value: each(j) })
        await producer.send({ topic: target, messages })
      }
    },
    // a request per message outruns the mock's fetches (one record batch per partition per fetch): what comes within
    // the linger goes in one request, as librdkafka does; the send time in each payload is still its own
    one: async (target, text) => {
      waiting.push(text)
      if (sending) return
      sending = true
      await new Promise((resolve) => setTimeout(resolve, KAFKA_LINGER_MS))
      try {
        while (waiting.length > 0) await producer.send({ topic: target, messages: waiting.splice(0).map((value) => ({ value })) })
      } finally {
        sending = false
      }
    },
    close: async () => {
      await producer.disconnect()
      await mock.close()
    }
  }
}

async function natsBroker (): Promise<Broker> {
  const server = await startNats(fakeTest as never) as NonNullable<Awaited<ReturnType<typeof startNats>>>
  const nc = await natsConnect({ servers: server.url })
  const jsm = await nc.jetstreamManager()
  await jsm.streams.add({ name: 'BENCH', subjects: ['bench.*'] })
  const js = nc.jetstream()
  return {
    name: 'nats',
    preload: false,
    url: server.url,
    gateway: 'bench.g',
    base: 'bench.b',
    env: { GATEWAYS: 'ws,nats', NATS_URL: server.url, NATS_BRIDGE: 'bench.g=public:bench', NATS_STREAM: 'BENCH', NATS_DURABLE: `gw${Date.now()}` },
    produce: async (target, count, each) => {
      const window: Array<Promise<unknown>> = []
      for (let i = 0; i < count; i++) {
        window.push(js.publish(target, Buffer.from(each(i))))
        if (window.length >= 500) await Promise.all(window.splice(0))
      }
      await Promise.all(window)
    },
    one: (target, text) => js.publish(target, Buffer.from(text)),
    close: async () => { await nc.close() }
  }
}

async function redisBroker (): Promise<Broker> {
  const server = await startRedis(fakeTest as never) as NonNullable<Awaited<ReturnType<typeof startRedis>>>
  const redis = new Redis(server.url)
  return {
    name: 'redis-streams',
    url: server.url,
    gateway: 'bench',
    base: 'benchbase',
    env: { GATEWAYS: 'ws,redis-streams', REDIS_STREAMS_URL: server.url, REDIS_STREAMS_BRIDGE: 'bench=public:bench', REDIS_STREAMS_GROUP: `gw${Date.now()}` },
    produce: async (target, count, each) => {
      for (let i = 0; i < count; i += 500) {
        const pipe = redis.pipeline()
        for (let j = i; j < Math.min(count, i + 500); j++) pipe.xadd(target, '*', 'data', each(j))
        await pipe.exec()
      }
    },
    one: (target, text) => redis.xadd(target, '*', 'data', text),
    close: async () => { redis.disconnect() }
  }
}

/** The broker's own client on CPU 0; `load` produces once it is ready. Resolves with its `done` line's numbers. */
async function ownClient (broker: Broker, target: string, count: number, load: (pid: number) => Promise<void>, latency = false): Promise<number[]> {
  const args = ['--import', 'tsx', 'bench/lib/stream-consumer.ts', JSON.stringify({ broker: broker.name, url: broker.url, target, count, latency, ...broker.baseOptions })]
  const proc = PIN ? spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  let text = ''
  const lines = new Promise<number[]>((resolve, reject) => {
    proc.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes('ready\n') && !text.includes('producing')) {
        text += 'producing'
        load(proc.pid as number).catch(reject)
      }
      const done = /done (\S+) (\S+) (\S+)\n/.exec(text)
      if (done !== null) resolve(done.slice(1).map(Number))
    })
    proc.once('exit', (code) => { if (code !== 0) reject(new Error(`baseline consumer exited ${code}`)) })
    setTimeout(() => { reject(new Error('baseline timed out')) }, 120_000).unref()
  })
  try {
    return await lines
  } finally {
    proc.kill()
  }
}

/** The broker's own client's rate in messages per second (round `round`: a target of its own). */
async function baseline (broker: Broker, round: number): Promise<number> {
  const target = `${broker.base}${round}`
  const [ms] = await ownClient(broker, target, COUNT, (pid) => preloaded(broker, pid, () => broker.produce(target, COUNT, (i) => payload(i))))
  return (COUNT - 1) / (ms / 1000)
}

/** One message per ms for RATE_SECONDS to `target`, each with its send time (process.hrtime, ns) in the payload. */
async function paced (broker: Broker, target: string): Promise<void> {
  const start = performance.now()
  for (let i = 0; i < RATE_SECONDS * 1000; i++) {
    const due = start + i
    const wait = due - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    void broker.one(target, payload(i, Number(process.hrtime.bigint())))
  }
}

/** Runs `produce` with the consumer process `pid` stopped (pre-loaded mode), or beside it. */
async function preloaded (broker: Broker, pid: number, produce: () => Promise<void>): Promise<void> {
  if (!PRELOAD || broker.preload === false) return await produce()
  process.kill(pid, 'SIGSTOP')
  try {
    await produce()
  } finally {
    process.kill(pid, 'SIGCONT')
  }
}

async function main () {
  const chosen = [...process.argv.slice(2).filter((a) => !a.startsWith('-')), ...(process.env.BENCH_STREAM_BROKERS ?? '').split(',').filter(Boolean)]
  const makers: Record<string, () => Promise<Broker>> = { kafka: kafkaBroker, mqtt: mqttBroker, nats: natsBroker, 'redis-streams': redisBroker }
  const names = chosen.length > 0 ? chosen : Object.keys(makers)
  console.log(`streams: ${COUNT} messages per round${PRELOAD ? ' (pre-loaded)' : ' (produced while consumed)'}, ${ROUNDS} rounds, latency at 1,000/s for ${RATE_SECONDS} s; ${machineNote()}`)
  console.log('| broker | mode | own client msg/s (median) | gateway → ws msg/s (median) | ratio per round | ratio (median) | p50 / p99 ms, gateway | p50 / p99 ms, own client |')
  console.log('| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |')
  for (const name of names) {
    const broker = await makers[name]()
    // Node 20 refuses --cpu-prof in NODE_OPTIONS: a module started with --import runs the inspector's profiler
    const profile: Record<string, string> = PROFILE === undefined
      ? {}
      : { NODE_OPTIONS: `--import tsx --import ${ROOT}bench/lib/cpu-profile.ts`, BENCH_PROFILE_DIR: PROFILE, BENCH_PROFILE_NAME: `${name}-${Date.now()}` }
    const instance = await startInstance(fakeTest as never, { ...broker.env, ...profile, LOG_LEVEL: 'info', PUBLIC_ROOMS: 'public:*', WS_SEND_BUFFER: String(64 * 1024 * 1024) }, { cpu: PIN ? 0 : undefined, startTimeoutMs: 60_000 })
    await instance.waitReady(30_000)
    const frames = await openWs(instance.wsUrl('/ws'))
    await frames.next(10_000)
    await frames.request({ op: 'join', room: 'public:bench' }, 10_000)
    // one message through first: the consumer is at its position (a Kafka group resolved its offsets) and warm
    const warm = new Promise<void>((resolve) => { frames.ws.once('message', () => { resolve() }) })
    const target = (round: number | 'warm') => broker.gatewayOf?.(round) ?? broker.gateway
    await broker.one(target('warm'), payload(-1))
    await Promise.race([warm, new Promise((resolve, reject) => setTimeout(() => { reject(new Error(`${name}: the warm-up message never reached the ws member`)) }, 60_000).unref())])
    const own: number[] = []
    const gateway: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      own.push(await baseline(broker, round))
      // through the gateway: count the ws events from the first to the last
      let seen = 0
      let first = 0
      const done = new Promise<number>((resolve) => {
        const onMessage = () => {
          if (seen === 0) first = performance.now()
          if (++seen === COUNT) {
            frames.ws.off('message', onMessage)
            resolve(performance.now() - first)
          }
        }
        frames.ws.on('message', onMessage)
      })
      await preloaded(broker, instance.pid, () => broker.produce(target(round), COUNT, (i) => payload(i)))
      const ms = await done
      gateway.push((COUNT - 1) / (ms / 1000))
    }
    // latency: one message per ms, send time in the payload (this process's clock)
    const latencies: number[] = []
    const total = RATE_SECONDS * 1000
    const received = new Promise<void>((resolve) => {
      const onMessage = (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as { op: string, data?: { sentNs?: number } }
        if (frame.op !== 'event' || frame.data?.sentNs === undefined) return
        latencies.push((Number(process.hrtime.bigint()) - frame.data.sentNs) / 1e6)
        if (latencies.length === total) {
          frames.ws.off('message', onMessage)
          resolve()
        }
      }
      frames.ws.on('message', onMessage)
    })
    await paced(broker, target('warm'))
    await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 30_000))])
    // the broker's own client at the same pace (its own process: the latencies are computed there)
    const [, ownP50, ownP99] = await ownClient(broker, `${broker.base}lat`, total, () => paced(broker, `${broker.base}lat`), true)
    const ratios = own.map((o, i) => gateway[i] / o)
    if (latencies.length < total) console.log(`(${name}: ${total - latencies.length} of ${total} latency messages never arrived within 30 s)`)
    console.log(`| ${name} | ${PRELOAD && broker.preload !== false ? 'pre-loaded' : 'concurrent'} | ${int(median(own))} | ${int(median(gateway))} | ${ratios.map((r) => fixed(r)).join(', ')} | ${fixed(median(ratios))} | ${fixed(percentile(latencies, 50))} / ${fixed(percentile(latencies, 99))} | ${fixed(ownP50)} / ${fixed(ownP99)} |`)
    if (process.env.BENCH_STREAM_LOGS === '1') console.log(instance.logs.filter((line) => !line.includes('"level":30')).slice(-20).join('\n'))
    frames.ws.terminate()
    await instance.stop()
    await broker.close()
  }
  for (const fn of cleanups.reverse()) await fn()
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
