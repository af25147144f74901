// The broker's own client consuming with no work, for bench/streams.ts: argv[2] is JSON { broker, url, target,
// count }. Consumes the same way the gateway does (MQTT: QoS 1 shared subscription; NATS: durable pull consumer,
// ack each; Redis: consumer group, XREADGROUP COUNT 10 + XACK each), prints `ready`, then `done <ms>` (first to
// last message) once `count` messages arrived. Acknowledgements are not awaited one by one (as in the gateway).
const config = JSON.parse(process.argv[2]) as { broker: string, url: string, target: string, count: number }
let seen = 0
let first = 0
const got = () => {
  if (seen === 0) first = performance.now()
  if (++seen === config.count) {
    process.stdout.write(`done ${performance.now() - first}\n`)
    process.exit(0)
  }
}

if (config.broker === 'mqtt') {
  const mqtt = (await import('mqtt')).default
  const client = await mqtt.connectAsync(config.url, { protocolVersion: 5, clientId: `bench-base-${process.pid}` })
  client.on('message', () => { got() })
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
      got()
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
      for (const [id] of entries) {
        void writer.xack(config.target, group, id)
        got()
      }
    }
  }
}
