// npm run bench -- streams (BENCH_STREAM_BROKERS=mqtt,nats,redis-streams to choose): messages per second from each broker to one ws member through
// server.ts, next to the broker's own client consuming the same messages with no work, in the same run; then the
// p99 message-to-socket latency at a steady 1,000 messages/s.
//
// This driver (the producer and the ws client) and the brokers run on CPU 1; server.ts and the baseline consumer on
// CPU 0 (taskset). Throughput: the producer publishes COUNT messages as fast as the broker takes them (pipelined),
// the consumer's rate is counted from its first message to its last. Latency: one message per ms with its send
// time (this process's clock) in the payload, read back on the ws socket in this same process.
import { spawn, spawnSync } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import mqtt from 'mqtt'
import { connect as natsConnect } from 'nats'
import { Redis } from 'ioredis'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { startNats } from '../test/helpers/nats.js'
import { startRedis } from '../test/helpers/redis.js'
import { startInstance } from '../test/helpers/instance.js'
import { openWs } from '../test/helpers/ws-client.js'
import { percentile, median, fixed, int, machineNote } from './lib/stats.js'
import { ROOT } from './lib/proc.js'

const COUNT = Number(process.env.BENCH_STREAM_COUNT ?? 20_000)
const ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 3)
const RATE_SECONDS = Number(process.env.BENCH_STREAM_SECONDS ?? 5)
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
  /** what the gateway consumes, and what the baseline consumes (never both at once: they must not share CPU 0) */
  gateway: string
  base: string
  /** publishes `count` messages to `target` as fast as the broker takes them; `each` gives a payload per index */
  produce: (target: string, count: number, each: (i: number) => string) => Promise<void>
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

async function natsBroker (): Promise<Broker> {
  const server = await startNats(fakeTest as never) as NonNullable<Awaited<ReturnType<typeof startNats>>>
  const nc = await natsConnect({ servers: server.url })
  const jsm = await nc.jetstreamManager()
  await jsm.streams.add({ name: 'BENCH', subjects: ['bench.*'] })
  const js = nc.jetstream()
  return {
    name: 'nats',
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

/** The broker's own client on CPU 0: resolves with messages per second. */
async function baseline (broker: Broker): Promise<number> {
  const args = ['--import', 'tsx', 'bench/lib/stream-consumer.ts', JSON.stringify({ broker: broker.name, url: broker.url, target: broker.base, count: COUNT })]
  const proc = PIN ? spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  let text = ''
  const lines = new Promise<string>((resolve, reject) => {
    proc.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes('ready\n') && !text.includes('producing')) {
        text += 'producing'
        broker.produce(broker.base, COUNT, (i) => payload(i)).catch(reject)
      }
      const done = /done ([\d.]+)/.exec(text)
      if (done !== null) resolve(done[1])
    })
    proc.once('exit', (code) => { if (code !== 0) reject(new Error(`baseline consumer exited ${code}`)) })
    setTimeout(() => { reject(new Error('baseline timed out')) }, 120_000).unref()
  })
  const ms = Number(await lines)
  proc.kill()
  return (COUNT - 1) / (ms / 1000)
}

async function main () {
  const chosen = [...process.argv.slice(2).filter((a) => !a.startsWith('-')), ...(process.env.BENCH_STREAM_BROKERS ?? '').split(',').filter(Boolean)]
  const makers: Record<string, () => Promise<Broker>> = { mqtt: mqttBroker, nats: natsBroker, 'redis-streams': redisBroker }
  const names = chosen.length > 0 ? chosen : Object.keys(makers)
  console.log(`streams: ${COUNT} messages per round, ${ROUNDS} rounds, latency at 1,000/s for ${RATE_SECONDS} s; ${machineNote()}`)
  console.log('| broker | own client msg/s (median) | gateway → ws msg/s (median) | ratio per round | ratio (median) | p50 ms | p99 ms |')
  console.log('| --- | ---: | ---: | --- | ---: | ---: | ---: |')
  for (const name of names) {
    const broker = await makers[name]()
    const instance = await startInstance(fakeTest as never, { ...broker.env, LOG_LEVEL: 'info', PUBLIC_ROOMS: 'public:*', WS_SEND_BUFFER: String(64 * 1024 * 1024) }, { cpu: PIN ? 0 : undefined, startTimeoutMs: 60_000 })
    await instance.waitReady(30_000)
    const frames = await openWs(instance.wsUrl('/ws'))
    await frames.next(10_000)
    await frames.request({ op: 'join', room: 'public:bench' }, 10_000)
    const own: number[] = []
    const gateway: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      own.push(await baseline(broker))
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
      await broker.produce(broker.gateway, COUNT, (i) => payload(i))
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
    const start = performance.now()
    for (let i = 0; i < total; i++) {
      const due = start + i
      const wait = due - performance.now()
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      void broker.one(broker.gateway, payload(i, Number(process.hrtime.bigint())))
    }
    await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 30_000))])
    const ratios = own.map((o, i) => gateway[i] / o)
    console.log(`| ${name} | ${int(median(own))} | ${int(median(gateway))} | ${ratios.map((r) => fixed(r)).join(', ')} | ${fixed(median(ratios))} | ${fixed(percentile(latencies, 50))} | ${fixed(percentile(latencies, 99))} |`)
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
