// The broker's own client consuming with no work, for bench/streams.ts: argv[2] is JSON { broker, url, target,
// count, maxWaitTimeInMs?, latency? }. Consumes the same way the gateway does (Kafka: kafkajs group consumer from the topic's
// beginning, `eachMessage` doing nothing, offsets auto-committed; MQTT: QoS 1 shared subscription; NATS: durable pull
// consumer, ack each; Redis: consumer group, XREADGROUP COUNT 10 + XACK each), prints `ready`, then `done <ms>` (first
// to last message) once `count` messages arrived. Acknowledgements are not awaited one by one (as in the gateway).
// With `latency`, each payload's `sentNs` (process.hrtime of the producer: the same monotonic clock in every process
// of the machine) gives the message's latency, and `done` also prints the p50 and p99 in ms.
import { percentile } from './stats.js'

const config = JSON.parse(process.argv[2]) as { broker: string, url: string, target: string, count: number, maxWaitTimeInMs?: number, latency?: boolean }
let seen = 0
let first = 0
const latencies: number[] = []
const got = (payload?: Uint8Array | null) => {
  if (seen === 0) first = performance.now()
  if (config.latency === true && payload != null) {
    const sentNs = (JSON.parse(Buffer.from(payload).toString()) as { sentNs: number }).sentNs
    latencies.push((Number(process.hrtime.bigint()) - sentNs) / 1e6)
  }
  if (++seen === config.count) {
    process.stdout.write(`done ${performance.now() - first} ${percentile(latencies, 50)} ${percentile(latencies, 99)}\n`)
    process.exit(0)
  }
}

if (config.broker === 'kafka') {
  const { Kafka, logLevel } = (await import('kafkajs')).default
  const kafka = new Kafka({ clientId: 'bench-base', brokers: config.url.split(','), logLevel: logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: `bench-base-${process.pid}`, maxWaitTimeInMs: config.maxWaitTimeInMs })
  const joined = new Promise((resolve) => { consumer.on(consumer.events.GROUP_JOIN, resolve) })
  await consumer.connect()
  // a topic new to this round: from its beginning is exactly this round's messages
  await consumer.subscribe({ topics: [config.target], fromBeginning: true })
  await consumer.run({ eachMessage: async ({ message }) => { got(message.value) } })
  await joined
  process.stdout.write('ready\n')
} else if (config.broker === 'mqtt') {
  const mqtt = (await import('mqtt')).default
  const client = await mqtt.connectAsync(config.url, { protocolVersion: 5, clientId: `bench-base-${process.pid}` })
  client.on('message', (_topic, payload) => { got(payload) })
  await client.subscribeAsync(`$share/bench-base-${process.pid}/${config.target}`, { qos: 1 })
  process.stdout.write('ready\n')
} else if (config.broker === 'nats') {
  const { connect, AckPolicy } = await import('nats')
  const nc = await connect({ servers: config.url })
  const jsm = await nc.jetstreamManager()
  await jsm.consumers.add('BENCH', { durable_name: `bench-base-${process.pid}`, ack_policy: AckPolicy.Explicit, deliver_policy: 'new' as never, filter_subject: config.target })
  const consumer = await nc.jetstream().consumers.get('BENCH', `bench-base-${process.pid}`)
  process.stdout.write('ready\n')
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 64, expires: 1000 })
    for await (const m of batch) {
      m.ack()
      got(m.data)
    }
  }
} else {
  const { Redis } = await import('ioredis')
  const reader = new Redis(config.url)
  const writer = new Redis(config.url)
  const group = `bench-base-${process.pid}`
  await reader.xgroup('CREATE', config.target, group, '$', 'MKSTREAM')
  process.stdout.write('ready\n')
  for (;;) {
    const reply = await reader.xreadgroupBuffer('GROUP', group, 'c', 'COUNT', 10, 'BLOCK', 1000, 'STREAMS', config.target, '>') as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
    for (const [, entries] of reply ?? []) {
      for (const [id, fields] of entries) {
        void writer.xack(config.target, group, id)
        got(fields[1])
      }
    }
  }
}
