import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { pathToFileURL } from 'node:url'
import type { DestinationStream } from 'pino'
import { loadConfig, ConfigError, type Config, type GatewayName } from './lib/config.js'
import { loggerOptions } from './lib/log.js'
import { createJwtAuthenticator } from './lib/auth/jwt.js'
import { createRoomPolicy } from './lib/auth/policy.js'
import type { Authenticate } from './lib/auth/user.js'
import { MemoryDedupeStore, type DedupeStore } from './lib/stores/dedupe.js'
import { rooms } from './plugins/rooms.js'
import { healthRoutes } from './routes/health.js'

/** What every gateway's wiring may use: the parsed config, auth shared by ws/sse/rtc, readiness checks to add. */
export interface Wiring {
  config: Config
  authenticate: Authenticate | undefined
  policy: ReturnType<typeof createRoomPolicy>
  checks: Record<string, () => boolean>
  /** a dedupe/idempotency store for one purpose ('stripe', 'hooks', 'idempotency'); memory, or Redis with REDIS_URL */
  createStore: (namespace: string) => DedupeStore
}

type Wire = (app: FastifyInstance, wiring: Wiring) => Promise<void>

/** One entry per gateway: how server.ts turns environment config into that gateway's plugin options. */
const gateways: Record<GatewayName, Wire> = {
  ws: unavailable('ws'),
  sse: unavailable('sse'),
  rtc: unavailable('rtc'),
  stripe: unavailable('stripe'),
  sms: unavailable('sms'),
  external: unavailable('external'),
  kafka: unavailable('kafka')
}

function unavailable (name: GatewayName): Wire {
  return async () => { throw new ConfigError('GATEWAYS', `the ${name} gateway is not available yet in this version`) }
}

export interface BuildOptions {
  /** where logs go (tests capture them); default stdout */
  logStream?: DestinationStream
}

/** The app server.ts serves: rooms, the gateways `config.gateways` names, `/health` and `/ready`. */
export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = options.logStream === undefined
    ? loggerOptions(config.LOG_LEVEL)
    : { ...loggerOptions(config.LOG_LEVEL), stream: options.logStream }
  const app = Fastify({
    logger: logger as FastifyServerOptions['logger'],
    // a hop count is valid for Fastify (proxy-addr) though its types omit it
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    // room names in paths may be 128 characters (and percent-encoded): more than Fastify's default of 100
    routerOptions: { maxParamLength: 512 },
    return503OnClosing: true
  })
  const wiring: Wiring = {
    config,
    authenticate: config.AUTH_JWT_SECRET === undefined ? undefined : createJwtAuthenticator(config.AUTH_JWT_SECRET),
    policy: createRoomPolicy({ publicRooms: config.PUBLIC_ROOMS, clientPublishRooms: config.CLIENT_PUBLISH_ROOMS }),
    checks: {},
    createStore: () => new MemoryDedupeStore()
  }
  try {
    await app.register(rooms, { historySize: config.HISTORY_SIZE, historyTtlMs: config.HISTORY_TTL_MS })
    for (const name of config.gateways) await gateways[name](app, wiring)
    await app.register(healthRoutes, { checks: wiring.checks })
    await app.ready()
  } catch (err) {
    await app.close().catch(() => {})
    throw err
  }
  return app
}

/** Start-up: config errors are one line on stderr and exit code 1; SIGINT/SIGTERM close gracefully. */
export async function main (env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance | undefined> {
  let config: Config
  try {
    config = loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fastify-gateways: configuration error: ${err.message}\n`)
      process.exitCode = 1
      return undefined
    }
    throw err
  }
  let app: FastifyInstance
  try {
    app = await buildApp(config)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    const kind = err instanceof ConfigError ? 'configuration error' : 'cannot start'
    process.stderr.write(`fastify-gateways: ${kind}: ${message}\n`)
    process.exitCode = 1
    return undefined
  }
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out')
      process.exit(1)
    }, config.SHUTDOWN_TIMEOUT_MS)
    timer.unref()
    app.close().then(() => { process.exitCode = 0 }, (err) => {
      app.log.error({ err }, 'shutdown failed')
      process.exitCode = 1
    })
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await app.listen({ port: config.PORT, host: config.HOST })
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`fastify-gateways: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
