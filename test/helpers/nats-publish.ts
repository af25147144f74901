// Another service publishing to JetStream: argv[2] is the server URL, stdin a JSON list of
// { subject, data (base64), headers? }. Each publish waits for JetStream's ack; exits 0 once all are stored.
import { connect, headers as natsHeaders } from 'nats'

const chunks: Buffer[] = []
for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
const messages = JSON.parse(Buffer.concat(chunks).toString()) as Array<{ subject: string, data: string, headers?: Record<string, string> }>
const nc = await connect({ servers: process.argv[2] })
const js = nc.jetstream()
for (const message of messages) {
  const headers = natsHeaders()
  for (const [name, value] of Object.entries(message.headers ?? {})) headers.set(name, value)
  await js.publish(message.subject, Buffer.from(message.data, 'base64'), { headers })
}
await nc.drain()
