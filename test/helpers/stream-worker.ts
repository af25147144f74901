// A stream gateway in a process of its own, for tests that SIGKILL an instance in the middle of a handler.
// argv[2]: JSON { broker: 'mqtt' | 'nats' | 'redis-streams', options: <plugin options>, pattern: string, noHang? }.
// It handles `{ "id": ..., "hang": true? }` messages: prints `entered <id>` and never finishes a hanging one, and
// `handled <id> <attempt> <dup>` for the others; `ready` once the gateway is ready. It exits when its stdin closes.
import Fastify from 'fastify'

const config = JSON.parse(process.argv[2]) as { broker: string, options: Record<string, unknown>, pattern: string, noHang?: boolean }
const app = Fastify()
type Api = { on: (pattern: string, handler: (message: { value: { id: string, hang?: boolean }, attempt: number, dup?: boolean }) => unknown) => void, isReady: () => boolean }
// the options come from the test as JSON: each plugin checks them at register
const plugins: Record<string, () => Promise<(app: typeof Fastify.prototype, options: object) => Promise<void>>> = {
  mqtt: async () => (await import('../../plugins/mqtt.js')).mqttGateway as never,
  nats: async () => (await import('../../plugins/nats.js')).natsGateway as never,
  'redis-streams': async () => (await import('../../plugins/redis-streams.js')).redisStreamsGateway as never
}
await app.register(await plugins[config.broker](), config.options)
const decorator = (config.options.decorator as string | undefined) ?? (config.broker === 'redis-streams' ? 'redisStreams' : config.broker)
const api = (app as unknown as Record<string, Api>)[decorator]
api.on(config.pattern, async (message) => {
  const { id, hang } = message.value
  if (hang === true && config.noHang !== true) {
    process.stdout.write(`entered ${id}\n`)
    await new Promise(() => {})
  }
  process.stdout.write(`handled ${id} ${message.attempt} ${String(message.dup ?? '')}\n`)
})
await app.ready()
const wait = setInterval(() => {
  if (api.isReady()) {
    clearInterval(wait)
    process.stdout.write('ready\n')
  }
}, 20)
process.stdin.resume()
process.stdin.on('end', () => { process.exit(0) })
