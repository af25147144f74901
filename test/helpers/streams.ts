import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Member, RoomEvent } from '../../lib/rooms/types.js'
import { Inbox } from './kcat.js'
import { NO_COVERAGE } from './instance.js'

export { Inbox, waitUntil } from './kcat.js'

/** A member of `room` on `app`'s registry that collects the events it gets. */
export function roomMember (app: FastifyInstance, room: string, user = 'u'): Inbox<RoomEvent> {
  const inbox = new Inbox<RoomEvent>()
  const member: Member<string> = {
    id: app.rooms.nextMemberId(),
    user,
    transport: 'test',
    encoder: { name: 'test', encode: (event) => event.dataJson },
    deliver: (_encoded, event) => { inbox.push(event) }
  }
  app.rooms.join(room, member)
  return inbox
}

/** One MQTT control packet seen by the wire proxy. */
export interface WirePacket {
  /** `up`: client to broker; `down`: broker to client */
  dir: 'up' | 'down'
  /** 3 PUBLISH, 4 PUBACK, 12 PINGREQ, 13 PINGRESP, ... */
  type: number
  /** the packet identifier of PUBLISH (QoS > 0) and PUBACK */
  id?: number
  topic?: string
  /** which proxied connection, in the order they opened */
  connection: number
}

/**
 * A TCP proxy in front of an MQTT broker that reads every packet both ways (fixed header, remaining length, topic and
 * packet id of PUBLISH, packet id of PUBACK): what really goes on the wire, in order per connection.
 */
export async function mqttWireProxy (brokerPort: number): Promise<{ port: number, packets: Inbox<WirePacket>, close: () => Promise<void> }> {
  const packets = new Inbox<WirePacket>()
  const sockets = new Set<Socket>()
  let connections = 0
  const server: Server = createServer((client) => {
    const connection = ++connections
    const broker = connect(brokerPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(broker)
    const tap = (dir: 'up' | 'down') => {
      let buffer = Buffer.alloc(0)
      return (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk])
        for (;;) {
          if (buffer.length < 2) return
          let length = 0
          let multiplier = 1
          let at = 1
          let byte
          do {
            if (at >= buffer.length) return
            byte = buffer[at++]
            length += (byte & 127) * multiplier
            multiplier *= 128
          } while ((byte & 128) !== 0)
          if (buffer.length < at + length) return
          const type = buffer[0] >> 4
          const body = buffer.subarray(at, at + length)
          const packet: WirePacket = { dir, type, connection }
          if (type === 3) {
            const qos = (buffer[0] >> 1) & 3
            const topicLength = body.readUInt16BE(0)
            packet.topic = body.subarray(2, 2 + topicLength).toString()
            if (qos > 0) packet.id = body.readUInt16BE(2 + topicLength)
          } else if (type === 4) {
            packet.id = body.readUInt16BE(0)
          }
          packets.push(packet)
          buffer = buffer.subarray(at + length)
        }
      }
    }
    client.on('data', tap('up'))
    broker.on('data', tap('down'))
    client.pipe(broker)
    broker.pipe(client)
    const end = () => { client.destroy(); broker.destroy() }
    client.on('error', end)
    broker.on('error', end)
    client.on('close', end)
    broker.on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return {
    port: address.port,
    packets,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}

/** A gateway in a child process of its own (test/helpers/stream-worker.ts), to be SIGKILLed in the middle of a handler. */
export interface Worker {
  /** `handled <id> <attempt>` and `entered <id>` lines, as they come */
  readonly lines: Inbox<string>
  readonly exited: Promise<number | null>
  kill (): Promise<void>
}

const WORKER = fileURLToPath(new URL('./stream-worker.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Starts the worker with `config` (see stream-worker.ts) and kills it in `t.after`. It ends by itself when this
 * process goes away (its stdin closes).
 */
export async function startWorker (t: { after: (fn: () => unknown) => void }, config: object): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(config)], {
    cwd: ROOT,
    env: { ...process.env, [NO_COVERAGE]: '0' },
    stdio: ['pipe', 'pipe', 'pipe']
  }) as ChildProcessWithoutNullStreams
  const lines = new Inbox<string>()
  const stderr: string[] = []
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  let buffer = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    buffer += chunk
    let end: number
    while ((end = buffer.indexOf('\n')) !== -1) {
      lines.push(buffer.slice(0, end))
      buffer = buffer.slice(end + 1)
    }
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => { stderr.push(chunk) })
  child.stdin.on('error', () => {})
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  t.after(kill)
  await Promise.race([
    lines.waitFor((items) => items.includes('ready'), 30_000, 'the worker to be ready'),
    exited.then((code) => { throw new Error(`the worker exited (${code}) before it was ready: ${stderr.join('').slice(-2000)}`) })
  ])
  return { lines, exited, kill }
}
