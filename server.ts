import Fastify, { type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify'
import { pathToFileURL } from 'node:url'
import { hostname } from 'node:os'
import type { DestinationStream } from 'pino'
import { loadConfig, ConfigError, type Config, type GatewayName } from './lib/config.js'
import { loggerOptions } from './lib/log.js'
import { closeOnUnreadBody } from './lib/http/unread-body.js'
import { createJwtAuthenticator } from './lib/auth/jwt.js'
import { createRoomPolicy } from './lib/auth/policy.js'
import type { Authenticate } from './lib/auth/user.js'
import { MemoryDedupeStore, type DedupeStore } from './lib/stores/dedupe.js'
import { rooms } from './plugins/rooms.js'
import { ensureReadiness, health } from './plugins/health.js'
import { metrics } from './plugins/metrics.js'
import { admin } from './plugins/admin.js'
// types only: lib/redis (and ioredis) are loaded when REDIS_URL or REDIS_CLUSTER_NODES is set
import type { RedisBus, RedisClient } from './lib/redis/index.js'
import { kafkaGateway, type KafkaClientConfig } from './plugins/kafka.js'
import { mqttGateway } from './plugins/mqtt.js'
import { natsGateway } from './plugins/nats.js'
import { redisStreamsGateway } from './plugins/redis-streams.js'
import { wsGateway } from './plugins/ws.js'
import { demoRoutes } from './routes/demo.js'
import { sseGateway } from './plugins/sse.js'
import { externalGateway } from './plugins/external.js'
import { stripeGateway } from './plugins/stripe.js'
import { smsGateway } from './plugins/sms.js'
import { sslcommerzGateway } from './plugins/sslcommerz.js'
import { republishDemoPayment, sslcommerzDemoRoutes } from './routes/sslcommerz-demo.js'
import { rtcSignalGateway } from './plugins/rtc-signal.js'

/** What every gateway's wiring may use: the parsed config, auth shared by ws/sse/rtc, the stores. */
export interface Wiring {
  config: Config
  authenticate: Authenticate | undefined
  policy: ReturnType<typeof createRoomPolicy>
  /** a dedupe/idempotency store for one purpose ('stripe', 'hooks', 'idempotency'); memory, or Redis with REDIS_URL */
  createStore: (namespace: string) => DedupeStore
}

type Wire = (app: FastifyInstance, wiring: Wiring) => Promise<void>

/** One entry per gateway: how server.ts turns environment config into that gateway's plugin options. */
// TODO(integration): back to Record<GatewayName, Wire> once every gateway of GATEWAY_NAMES is wired
const gateways: Partial<Record<GatewayName, Wire>> = {
  ws: async (app, { config, authenticate, policy }) => {
    await app.register(wsGateway, {
      authenticate,
      authorizeJoin: policy.canJoin,
      authorizePublish: policy.canPublish,
      allowedOrigins: config.ALLOWED_ORIGINS,
      maxPayload: config.WS_MAX_PAYLOAD,
      pingMs: config.WS_PING_MS,
      maxRoomsPerConnection: config.WS_MAX_ROOMS,
      maxConnectionsPerIp: config.WS_MAX_CONN_PER_IP,
      ratePerSec: config.WS_RATE_PER_SEC,
      rateBurst: config.WS_RATE_BURST,
      sendBufferBytes: config.WS_SEND_BUFFER,
      ...inboundByteLimits(config)
    })
    // GET / (the demo page) and the browser client, telling the page which other gateways are on
    const on = (name: GatewayName, path: string) => config.gateways.has(name) ? path : false as const
    await app.register(demoRoutes, {
      endpoints: {
        ws: '/ws',
        sse: on('sse', '/sse'),
        rtc: on('rtc', '/rtc'),
        api: on('external', '/api'),
        // the sslcommerz demo checkout exists in the sandbox only (see the sslcommerz entry below)
        sslcommerz: config.SSLCOMMERZ_LIVE ? false : on('sslcommerz', '/demo/sslcommerz')
      },
      publishRooms: config.CLIENT_PUBLISH_ROOMS
    })
  },
  sse: async (app, { config, authenticate, policy }) => {
    await app.register(sseGateway, {
      authenticate,
      authorizeJoin: policy.canJoin,
      allowedOrigins: config.ALLOWED_ORIGINS,
      heartbeatMs: config.SSE_HEARTBEAT_MS,
      retryMs: config.SSE_RETRY_MS,
      maxRoomsPerStream: config.SSE_MAX_ROOMS,
      maxConnectionsPerIp: config.SSE_MAX_CONN_PER_IP,
      sendBufferBytes: config.SSE_SEND_BUFFER
    })
  },
  rtc: async (app, { config, authenticate, policy }) => {
    if (config.RTC_TURN_URLS.length > 0 && config.RTC_TURN_SECRET === undefined) {
      throw new ConfigError('RTC_TURN_SECRET', 'is required with RTC_TURN_URLS (TURN credentials are made with it)')
    }
    await app.register(rtcSignalGateway, {
      authenticate,
      authorizeJoin: policy.canJoin,
      allowedOrigins: config.ALLOWED_ORIGINS,
      roomCapacity: config.RTC_ROOM_CAPACITY,
      stunUrls: config.RTC_STUN_URLS,
      turnUrls: config.RTC_TURN_URLS,
      turnSecret: config.RTC_TURN_SECRET,
      turnTtlS: config.RTC_TURN_TTL_S,
      signalRatePerSec: config.RTC_SIGNAL_RATE_PER_SEC,
      maxPayload: config.WS_MAX_PAYLOAD,
      pingMs: config.WS_PING_MS,
      maxRoomsPerConnection: config.WS_MAX_ROOMS,
      maxConnectionsPerIp: config.WS_MAX_CONN_PER_IP,
      ratePerSec: config.WS_RATE_PER_SEC,
      rateBurst: config.WS_RATE_BURST,
      sendBufferBytes: config.WS_SEND_BUFFER,
      ...inboundByteLimits(config)
    })
  },
  stripe: async (app, { config, createStore }) => {
    const store = createStore('stripe')
    app.addHook('onClose', async () => { await store.close() })
    await app.register(stripeGateway, {
      // loadConfig refuses to start the stripe gateway without it
      webhookSecret: config.STRIPE_WEBHOOK_SECRET as string[],
      secretKey: config.STRIPE_SECRET_KEY,
      bodyLimit: config.STRIPE_BODY_LIMIT,
      handlerTimeoutMs: config.STRIPE_HANDLER_TIMEOUT_MS,
      store,
      // stripe.<type> to room stripe and user:<id> (docs/stripe.md)
      publish: true
    })
  },
  sms: async (app, { config, createStore }) => {
    const store = createStore('sms')
    app.addHook('onClose', async () => { await store.close() })
    await app.register(smsGateway, {
      // loadConfig refuses to start the sms gateway without it
      authToken: config.TWILIO_AUTH_TOKEN as string[],
      accountSid: config.TWILIO_ACCOUNT_SID,
      from: config.TWILIO_FROM,
      publicUrl: config.PUBLIC_URL,
      ratePerMin: config.SMS_RATE_PER_MIN,
      store
    })
  },
  sslcommerz: async (app, { config, createStore }) => {
    const store = createStore('sslcommerz')
    app.addHook('onClose', async () => { await store.close() })
    // the demo page's "Pay with SSLCommerz" block: sandbox only, with the ws gateway that serves the page
    const demo = !config.SSLCOMMERZ_LIVE && config.gateways.has('ws')
    const paths = { ipn: '/webhooks/sslcommerz', success: '/payments/sslcommerz/success', fail: '/payments/sslcommerz/fail', cancel: '/payments/sslcommerz/cancel' }
    await app.register(sslcommerzGateway, {
      // loadConfig refuses to start the sslcommerz gateway without them
      storeId: config.SSLCOMMERZ_STORE_ID as string,
      storePassword: config.SSLCOMMERZ_STORE_PASSWORD as string,
      live: config.SSLCOMMERZ_LIVE,
      apiUrl: config.SSLCOMMERZ_API_URL,
      publicUrl: config.PUBLIC_URL,
      ipnPath: paths.ipn,
      successPath: paths.success,
      failPath: paths.fail,
      cancelPath: paths.cancel,
      redirects: { success: config.SSLCOMMERZ_SUCCESS_URL, fail: config.SSLCOMMERZ_FAIL_URL, cancel: config.SSLCOMMERZ_CANCEL_URL },
      store,
      on: demo ? { '*': async (notification, ctx) => { await republishDemoPayment(ctx.rooms, notification) } } : {}
    })
    if (demo) await app.register(sslcommerzDemoRoutes, { paths })
  },
  external: async (app, { config, createStore }) => {
    const apiKeys: Record<string, string> = {}
    for (const [name, key] of config.EXTERNAL_API_KEYS ?? []) {
      if (name in apiKeys) throw new ConfigError('EXTERNAL_API_KEYS', `the name ${name} appears twice`)
      apiKeys[name] = key
    }
    // a repeated source is a rotation: every one of its secrets verifies
    const webhookSecrets: Record<string, string[]> = {}
    for (const [source, secret] of config.EXTERNAL_WEBHOOK_SECRETS ?? []) (webhookSecrets[source] ??= []).push(secret)
    const store = createStore('idempotency')
    const hookStore = createStore('hooks')
    app.addHook('onClose', async () => { await Promise.all([store.close(), hookStore.close()]) })
    await app.register(externalGateway, {
      apiKeys,
      webhookSecrets,
      bodyLimit: config.EXTERNAL_BODY_LIMIT,
      rateLimit: { max: config.EXTERNAL_RATE_MAX, timeWindowMs: config.EXTERNAL_RATE_WINDOW_MS },
      store,
      hookStore
    })
  },
  kafka: async (app, { config }) => {
    if (config.KAFKA_HEARTBEAT_MS >= config.KAFKA_SESSION_TIMEOUT_MS) {
      throw new ConfigError('KAFKA_HEARTBEAT_MS', 'must be lower than KAFKA_SESSION_TIMEOUT_MS (about a third of it)')
    }
    const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = config
    if (mechanism !== undefined && (username === undefined || password === undefined)) {
      throw new ConfigError(username === undefined ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD', 'is required with KAFKA_SASL_MECHANISM')
    }
    await app.register(kafkaGateway, {
      // loadConfig refuses to start the kafka gateway without it
      brokers: config.KAFKA_BROKERS as string[],
      groupId: config.KAFKA_GROUP_ID,
      clientId: config.KAFKA_CLIENT_ID,
      bridge: config.KAFKA_BRIDGE,
      retries: config.KAFKA_RETRIES,
      retryBackoffMs: config.KAFKA_RETRY_BACKOFF_MS,
      maxWaitTimeInMs: config.KAFKA_MAX_WAIT_MS,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: config.KAFKA_HEARTBEAT_MS,
      fromBeginning: config.KAFKA_FROM_BEGINNING,
      dlqSuffix: config.KAFKA_DLQ_SUFFIX,
      // half of the shutdown budget: the rest is for the other gateways and the HTTP server
      closeTimeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS / 2),
      kafkaConfig: {
        ssl: config.KAFKA_SSL,
        ...(mechanism === undefined ? {} : { sasl: { mechanism, username, password } as NonNullable<KafkaClientConfig['sasl']> })
      }
    })
  },
  mqtt: async (app, { config }) => {
    await app.register(mqttGateway, {
      // loadConfig refuses to start the mqtt gateway without it
      url: config.MQTT_URL as string,
      bridge: config.MQTT_BRIDGE,
      group: config.MQTT_GROUP,
      // stable across restarts (the broker keeps this id's session), distinct per instance on one host
      clientId: config.MQTT_CLIENT_ID ?? `${config.MQTT_GROUP}-${hostname()}-${config.PORT}`.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 128),
      sessionExpiryS: config.MQTT_SESSION_EXPIRY_S,
      keepaliveS: config.MQTT_KEEPALIVE_S,
      ...streamTuning(config)
    })
  },
  nats: async (app, { config }) => {
    await app.register(natsGateway, {
      // loadConfig refuses to start the nats gateway without it
      servers: config.NATS_URL as string[],
      bridge: config.NATS_BRIDGE,
      stream: config.NATS_STREAM,
      durable: config.NATS_DURABLE,
      ackWaitMs: config.NATS_ACK_WAIT_MS,
      ...streamTuning(config)
    })
  },
  'redis-streams': async (app, { config }) => {
    await app.register(redisStreamsGateway, {
      // loadConfig refuses to start the redis-streams gateway without one of them
      url: (config.REDIS_STREAMS_URL ?? config.REDIS_URL) as string,
      bridge: config.REDIS_STREAMS_BRIDGE,
      group: config.REDIS_STREAMS_GROUP,
      claimMs: config.REDIS_STREAMS_CLAIM_MS,
      blockMs: config.REDIS_STREAMS_BLOCK_MS,
      ...(config.REDIS_STREAMS_CONSUMER === undefined ? {} : { consumer: config.REDIS_STREAMS_CONSUMER }),
      ...streamTuning(config)
    })
  }
}

/** What the mqtt, nats and redis-streams gateways share in server.ts. */
function streamTuning (config: Config) {
  return {
    retries: config.STREAM_RETRIES,
    retryBackoffMs: config.STREAM_RETRY_BACKOFF_MS,
    // half of the shutdown budget: the rest is for the other gateways and the HTTP server
    closeTimeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS / 2)
  }
}

/** The inbound byte budgets of ws and rtc clients (docs/security.md, "Memory budget"). */
function inboundByteLimits (config: Config) {
  return {
    bytesPerSec: config.WS_RATE_BYTES_PER_SEC,
    bytesBurst: config.WS_RATE_BYTES_BURST,
    ipBytesPerSec: config.WS_IP_RATE_BYTES_PER_SEC,
    ipBytesBurst: config.WS_IP_RATE_BYTES_BURST
  }
}

/**
 * REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster): rooms, history, presence and rtc signals go
 * through a RedisBus, the dedupe/idempotency stores live in Redis (one shared connection), and `/ready` answers 503
 * while something fails: `redis` (not connected, or a publish or heartbeat failed), `redis:subscriptions` (a room
 * subscription is not in place), `redis:slots` (a cluster master does not answer, or a slot has none).
 * docs/scale-out.md.
 */
export async function wireRedis (app: FastifyInstance, target: { url: string } | { nodes: string[] }, wiring: Wiring): Promise<RedisBus> {
  const { config } = wiring
  const log = app.log.child({ component: 'redis' })
  const redis = await import('./lib/redis/index.js')
  const bus = new redis.RedisBus({
    ...('url' in target ? { redis: target.url } : { cluster: target.nodes }),
    keyPrefix: config.REDIS_PREFIX,
    historySize: config.HISTORY_SIZE,
    historyTtlMs: config.HISTORY_TTL_MS,
    historyEventMaxBytes: config.HISTORY_EVENT_MAX_BYTES,
    presenceTtlMs: config.REDIS_PRESENCE_TTL_MS,
    log
  })
  // the rooms plugin closes the bus with the registry; closing it here too covers a start-up that failed before
  let closing = false
  let stores: RedisClient | null = null
  app.addHook('onClose', async () => {
    closing = true
    await Promise.all([bus.close(), stores === null ? undefined : redis.closeClient(stores)])
  })
  await bus.open()
  const ioredis = await redis.loadIORedis()
  stores = 'url' in target
    ? redis.createRedisClient(ioredis, target.url, { connectionName: 'gw-stores' })
    : redis.createRedisCluster(ioredis, target.nodes, { connectionName: 'gw-stores' })
  let storesDown = false
  const lost = (err?: Error) => {
    if (!storesDown && !closing) log.warn({ ...(err === undefined ? {} : { err }) }, 'redis store connection lost; reconnecting with backoff')
    storesDown = true
  }
  const storeClient = stores
  storeClient.on('error', lost)
  storeClient.on('close', () => { lost() })
  storeClient.on('ready', () => { storesDown = false })
  // one readiness name per reason the bus reports (the health plugin's own bus check is off: it has one name)
  const failing = () => app.rooms.failing()
  const readiness = ensureReadiness(app)
  readiness.add('redis', () => !failing().includes('redis') && !failing().includes('closed') && storeClient.status === 'ready')
  readiness.add('redis:subscriptions', () => !failing().includes('redis:subscriptions'))
  if (!('url' in target)) readiness.add('redis:slots', () => !failing().includes('redis:slots'))
  wiring.createStore = (namespace) => new redis.RedisDedupeStore({ redis: storeClient, namespace, keyPrefix: `${config.REDIS_PREFIX}:dedupe` })
  return bus
}

export interface BuildOptions {
  /** where logs go (tests capture them); default stdout */
  logStream?: DestinationStream
  /** told about every route as it is added (the hostile test suite fuzzes the app's own route list) */
  onRoute?: (route: RouteOptions) => void
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
  if (options.onRoute !== undefined) app.addHook('onRoute', options.onRoute)
  const wiring: Wiring = {
    config,
    authenticate: config.AUTH_JWT_SECRET === undefined ? undefined : createJwtAuthenticator(config.AUTH_JWT_SECRET),
    policy: createRoomPolicy({ publicRooms: config.PUBLIC_ROOMS, clientPublishRooms: config.CLIENT_PUBLISH_ROOMS }),
    createStore: () => new MemoryDedupeStore()
  }
  // a refusal answered before the body was read ends its connection instead of draining the body (docs/security.md)
  app.addHook('onSend', closeOnUnreadBody)
  try {
    const redis = config.REDIS_URL !== undefined
      ? { url: config.REDIS_URL }
      : config.REDIS_CLUSTER_NODES !== undefined ? { nodes: config.REDIS_CLUSTER_NODES } : undefined
    const bus = redis === undefined ? undefined : await wireRedis(app, redis, wiring)
    await app.register(rooms, {
      historySize: config.HISTORY_SIZE,
      historyTtlMs: config.HISTORY_TTL_MS,
      historyRooms: config.HISTORY_ROOMS,
      historyMaxBytes: config.HISTORY_MAX_BYTES,
      historyRoomMaxBytes: config.HISTORY_ROOM_MAX_BYTES,
      historyEventMaxBytes: config.HISTORY_EVENT_MAX_BYTES,
      bus
    })
    // operations (docs/operations.md): GET /metrics, the admin dashboard; /health and /ready always
    if (config.METRICS) await app.register(metrics, { token: config.METRICS_TOKEN })
    else if (config.METRICS_TOKEN !== undefined) app.log.warn('METRICS_TOKEN is set but METRICS is not true: no /metrics')
    for (const name of config.gateways) {
      const wire = gateways[name]
      if (wire === undefined) throw new ConfigError('GATEWAYS', `the ${name} gateway is not wired in this build`)
      await wire(app, wiring)
    }
    if (config.ADMIN_PASSWORD !== undefined) await app.register(admin, { password: config.ADMIN_PASSWORD })
    // with Redis, wireRedis added the bus's readiness checks (one name per reason)
    await app.register(health, { bus: redis === undefined })
    await app.ready()
    logClientPublishing(app, config)
  } catch (err) {
    await app.close().catch(() => {})
    throw err
  }
  return app
}

/** Says at start-up whether browsers may publish over ws, and how to close or widen it. */
function logClientPublishing (app: FastifyInstance, config: Config): void {
  const rooms = config.CLIENT_PUBLISH_ROOMS
  if (!config.gateways.has('ws') && !config.gateways.has('rtc')) return
  if (rooms.length === 0) {
    app.log.info('client publishing is closed (CLIENT_PUBLISH_ROOMS is empty): only the server and the external API publish')
    return
  }
  app.log.info({ clientPublishRooms: rooms },
    'clients may publish over ws to rooms matching CLIENT_PUBLISH_ROOMS (bounded by the history memory budget and per-connection byte rates); set CLIENT_PUBLISH_ROOMS= (empty) to close client publishing')
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
  handleShutdownSignals(app, config.SHUTDOWN_TIMEOUT_MS)
  await app.listen({ port: config.PORT, host: config.HOST })
  return app
}

/** Signals that may be forwarded (npm) or sent to the whole process group: each arrives twice for one Ctrl-C. */
const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const
/** The signal that forces an exit during a graceful shutdown: the third one received (a group signal under npm counts twice). */
export const FORCE_EXIT_SIGNAL_COUNT = 3

/**
 * SIGINT/SIGTERM close `app` gracefully (sockets get 1001, streams end, brokers commit), exit code 0, or 1 when the
 * close fails or outlasts `timeoutMs`. The handlers stay installed (never `process.once`): a repeated signal during the
 * shutdown is logged and ignored, since one Ctrl-C in a terminal, `kill -- -PGID` or a service manager signalling the
 * control group reaches node twice under `npm start` (npm forwards it). The third signal forces an exit at once, with
 * the shell's code for it (130 for SIGINT, 143 for SIGTERM). Returns a function that removes the handlers.
 */
export function handleShutdownSignals (app: FastifyInstance, timeoutMs: number,
  exitProcess: (code: number) => void = (code) => process.exit(code)): () => void {
  let received = 0
  const onSignal = (signal: NodeJS.Signals) => {
    received++
    if (received > 1) {
      if (received >= FORCE_EXIT_SIGNAL_COUNT) {
        app.log.warn({ signal, received }, 'shutdown forced by a repeated signal')
        exitProcess(128 + (signal === 'SIGINT' ? 2 : 15))
        return
      }
      app.log.info({ signal, received }, 'already shutting down (a repeated or forwarded signal); a third signal forces the exit')
      return
    }
    app.log.info({ signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error({ timeoutMs }, 'shutdown timed out')
      exitProcess(1)
    }, timeoutMs)
    timer.unref()
    const exit = (code: number) => {
      clearTimeout(timer)
      process.exitCode = code
      // a client library's stray timer (kafkajs reconnects, for one) must not keep a closed server alive
      setTimeout(() => { exitProcess(code) }, 1000).unref()
    }
    app.close().then(() => { exit(0) }, (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      exit(1)
    })
  }
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal)
  return () => { for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal) }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`fastify-gateways: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
