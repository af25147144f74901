import { z } from 'zod'

/**
 * The environment of server.ts (docs/configuration.md), parsed once with zod. Errors are one line naming the variable
 * and what is wrong, never its value: most of these are secrets.
 */
export const GATEWAY_NAMES = ['ws', 'sse', 'rtc', 'stripe', 'sms', 'sslcommerz', 'external', 'kafka', 'mqtt', 'nats', 'redis-streams'] as const
export type GatewayName = typeof GATEWAY_NAMES[number]

export class ConfigError extends Error {
  readonly code = 'GW_CONFIG'
  constructor (readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`)
    this.name = 'ConfigError'
  }
}

const list = z.string().transform((s) => s.split(',').map((part) => part.trim()).filter((part) => part.length > 0))
const int = (min: number, max: number, fallback: number) =>
  z.coerce.number({ error: 'must be a whole number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` })
    .default(fallback)
/** `name=value` pairs; names may repeat (several secrets of one source, for rotation). */
const pairs = (what: string, namePattern: RegExp, valueCheck: (value: string) => string | null) =>
  list.transform((items, ctx) => {
    const out: Array<[string, string]> = []
    for (const item of items) {
      const eq = item.indexOf('=')
      const name = eq > 0 ? item.slice(0, eq).trim() : ''
      const value = eq > 0 ? item.slice(eq + 1).trim() : ''
      if (!namePattern.test(name) || value.length === 0) {
        ctx.addIssue({ code: 'custom', message: `each entry must be ${what}` })
        return z.NEVER
      }
      const problem = valueCheck(value)
      if (problem !== null) {
        ctx.addIssue({ code: 'custom', message: `the entry for ${name} ${problem}` })
        return z.NEVER
      }
      out.push([name, value])
    }
    return out
  })

const NAME = /^[A-Za-z0-9_.-]{1,64}$/
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/
/** an MQTT topic filter: levels split by /, + for one level, # for the rest (last level only) */
const MQTT_FILTER = /^(?!.*#.)(?!\$share\/)[^\s=,\p{Cc}]{1,512}$/u
/** a NATS subject: tokens split by ., * for one token, > for the rest (last token only) */
const NATS_SUBJECT = /^(?:[A-Za-z0-9_$-]+|\*)(?:\.(?:[A-Za-z0-9_$-]+|\*))*(?:\.>)?$|^>$/
const STREAM_KEY = /^[A-Za-z0-9_.:{}-]{1,256}$/
const ROOM_TEMPLATE = /^[A-Za-z0-9_.:@{}-]{1,160}$/
const roomTemplate = (value: string) => ROOM_TEMPLATE.test(value) ? null : 'must be a room name with {field} or {1}..{n} placeholders'
const bool = z.enum(['true', 'false'], { error: 'must be true or false' }).transform((v) => v === 'true').default(false)
/** where a browser is redirected: a path of this site or an http(s) URL (never `//host` or `javascript:`) */
const returnUrl = z.string().regex(/^(\/(?!\/)|https?:\/\/)\S*$/, { error: 'must be a path (/...) or an http(s) URL' })
const httpUrl = (example: string) => z.url({ protocol: /^https?$/, error: `must be an http(s) URL such as ${example}` })

const EnvSchema = z.object({
  PORT: int(0, 65535, 3000),
  HOST: z.string().default('0.0.0.0'),
  GATEWAYS: list.default(['ws', 'sse', 'rtc']).pipe(z.array(z.enum(GATEWAY_NAMES, {
    error: (issue) => `unknown gateway ${JSON.stringify(issue.input)} (choose from ${GATEWAY_NAMES.join(',')})`
  }))),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent'
  }).default('info'),
  TRUST_PROXY: z.string().default('false'),
  ALLOWED_ORIGINS: list.default([]),
  AUTH_JWT_SECRET: z.string().refine((s) => Buffer.byteLength(s) >= 32, { error: 'must have at least 32 bytes (HS256 keys are 256 bits)' }).optional(),
  PUBLIC_ROOMS: list.default(['public:*']),
  CLIENT_PUBLISH_ROOMS: list.default(['public:demo*']),
  HISTORY_SIZE: int(0, 100_000, 100),
  HISTORY_TTL_MS: int(1000, 30 * 24 * 3600 * 1000, 24 * 3600 * 1000),
  // ---- history memory budget (in-memory bus; docs/scale-out.md has the formula)
  HISTORY_ROOMS: int(1, 10_000_000, 10_000),
  HISTORY_MAX_BYTES: int(64 * 1024, 64 * 1024 * 1024 * 1024, 64 * 1024 * 1024),
  HISTORY_ROOM_MAX_BYTES: int(1024, 1024 * 1024 * 1024, 1024 * 1024),
  HISTORY_EVENT_MAX_BYTES: int(256, 1024 * 1024 * 1024, 256 * 1024),
  REDIS_URL: z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL' }).optional(),
  REDIS_CLUSTER_NODES: list.pipe(z.array(z.string().regex(/^[^\s:/]+:\d{1,5}$/, { error: 'each node must be host:port' }))
    .min(1, { error: 'is empty' })).optional(),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.:{}-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:{}-' }).default('gw'),
  REDIS_PRESENCE_TTL_MS: int(1000, 3_600_000, 15_000),
  SHUTDOWN_TIMEOUT_MS: int(100, 600_000, 10_000),

  WS_MAX_PAYLOAD: int(256, 16 * 1024 * 1024, 65_536),
  WS_PING_MS: int(1000, 3_600_000, 25_000),
  WS_MAX_ROOMS: int(1, 100_000, 100),
  WS_MAX_CONN_PER_IP: int(1, 1_000_000, 1000),
  WS_RATE_PER_SEC: int(1, 1_000_000, 50),
  WS_RATE_BURST: int(1, 1_000_000, 100),
  WS_SEND_BUFFER: int(1024, 1024 * 1024 * 1024, 1024 * 1024),

  SSE_HEARTBEAT_MS: int(1000, 3_600_000, 15_000),
  SSE_RETRY_MS: int(0, 3_600_000, 3000),
  SSE_MAX_ROOMS: int(1, 10_000, 32),
  SSE_MAX_CONN_PER_IP: int(1, 1_000_000, 1000),
  SSE_SEND_BUFFER: int(1024, 1024 * 1024 * 1024, 1024 * 1024),

  RTC_ROOM_CAPACITY: int(2, 1000, 8),
  RTC_STUN_URLS: list.pipe(z.array(z.string().regex(/^stuns?:\S+$/, { error: 'each URL must start with stun: or stuns:' }))).default([]),
  RTC_TURN_URLS: list.pipe(z.array(z.string().regex(/^turns?:\S+$/, { error: 'each URL must start with turn: or turns:' }))).default([]),
  RTC_TURN_SECRET: z.string().optional(),
  RTC_TURN_TTL_S: int(60, 7 * 24 * 3600, 3600),
  RTC_SIGNAL_RATE_PER_SEC: int(1, 100_000, 50),

  STRIPE_WEBHOOK_SECRET: list.pipe(z.array(z.string().regex(/^whsec_[A-Za-z0-9+/=_-]+$/, {
    error: 'each secret must start with whsec_ (the endpoint signing secret from the Stripe dashboard)'
  })).min(1, { error: 'is empty' })).optional(),
  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_\S+$/, { error: 'must be a Stripe secret (sk_...) or restricted (rk_...) key' }).optional(),
  STRIPE_BODY_LIMIT: int(1024, 64 * 1024 * 1024, 1024 * 1024),
  STRIPE_HANDLER_TIMEOUT_MS: int(1, 600_000, 10_000),

  TWILIO_AUTH_TOKEN: list.pipe(z.array(z.string()).min(1, { error: 'is empty' })).optional(),
  TWILIO_ACCOUNT_SID: z.string().regex(/^AC[0-9a-fA-F]{32}$/, { error: 'must be AC followed by 32 hex digits' }).optional(),
  TWILIO_FROM: z.string().regex(/^(\+[1-9]\d{1,14}|MG[0-9a-fA-F]{32})$/, { error: 'must be an E.164 number (+15551234567) or a Messaging Service SID (MG...)' }).optional(),
  PUBLIC_URL: httpUrl('https://api.example.com').optional(),
  SMS_RATE_PER_MIN: int(1, 1_000_000, 600),

  EXTERNAL_API_KEYS: pairs('name=key', NAME, () => null).optional(),
  EXTERNAL_WEBHOOK_SECRETS: pairs('source=whsec_...', NAME, (value) =>
    /^whsec_[A-Za-z0-9+/=]+$/.test(value) ? null : 'must start with whsec_ followed by base64').optional(),
  EXTERNAL_RATE_MAX: int(1, 1_000_000, 600),
  EXTERNAL_RATE_WINDOW_MS: int(100, 24 * 3600 * 1000, 60_000),
  EXTERNAL_BODY_LIMIT: int(256, 64 * 1024 * 1024, 65_536),

  KAFKA_BROKERS: list.pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, { error: 'each broker must be host:port' }))
    .min(1, { error: 'is empty' })).optional(),
  KAFKA_GROUP_ID: z.string().default('fastify-gateways'),
  KAFKA_CLIENT_ID: z.string().default('fastify-gateways'),
  KAFKA_BRIDGE: pairs('topic=roomTemplate', TOPIC, (value) =>
    /^[A-Za-z0-9_.:@{}-]{1,160}$/.test(value) ? null : 'must be a room name with {field} placeholders').default([]),
  KAFKA_RETRIES: int(0, 100, 3),
  KAFKA_MAX_WAIT_MS: int(10, 60_000, 500),
  KAFKA_SESSION_TIMEOUT_MS: int(2000, 600_000, 30_000),
  KAFKA_HEARTBEAT_MS: int(100, 600_000, 3000),
  KAFKA_RETRY_BACKOFF_MS: int(0, 600_000, 200),
  KAFKA_FROM_BEGINNING: bool,
  KAFKA_DLQ_SUFFIX: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9._-' }).default('.dlq'),
  KAFKA_SSL: bool,
  KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512'], { error: 'must be plain, scram-sha-256 or scram-sha-512' }).optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),

  // ---- mqtt
  MQTT_URL: z.string().regex(/^(mqtts?|wss?):\/\/\S+$/, { error: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' }).optional(),
  MQTT_BRIDGE: pairs('topicFilter=roomTemplate', MQTT_FILTER, roomTemplate).default([]),
  MQTT_GROUP: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.-' }).default('fastify-gateways'),

  // ---- nats
  NATS_URL: list.pipe(z.array(z.string().regex(/^(nats|tls):\/\/\S+$/, { error: 'each server must be a nats://host:port URL' }))
    .min(1, { error: 'is empty' })).optional(),
  NATS_BRIDGE: pairs('subject=roomTemplate', NATS_SUBJECT, roomTemplate).default([]),
  NATS_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).default('GATEWAYS'),
  NATS_DURABLE: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_-' }).default('fastify-gateways'),

  // ---- redis-streams
  REDIS_STREAMS_URL: z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL' }).optional(),
  REDIS_STREAMS_BRIDGE: pairs('streamKey=roomTemplate', STREAM_KEY, roomTemplate).default([]),
  REDIS_STREAMS_GROUP: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'must be 1 to 64 characters of A-Za-z0-9_.:-' }).default('fastify-gateways'),
  REDIS_STREAMS_CLAIM_MS: int(100, 24 * 3600 * 1000, 30_000),

  // ---- stream gateways (mqtt, nats, redis-streams): tuning, docs/streams.md
  STREAM_RETRIES: int(0, 100, 3),
  STREAM_RETRY_BACKOFF_MS: int(0, 600_000, 200),
  MQTT_CLIENT_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 characters of A-Za-z0-9_.:-' }).optional(),
  MQTT_SESSION_EXPIRY_S: int(0, 4_294_967_295, 600),
  MQTT_KEEPALIVE_S: int(1, 65_535, 30),
  NATS_ACK_WAIT_MS: int(100, 3_600_000, 30_000),
  REDIS_STREAMS_CONSUMER: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 characters of A-Za-z0-9_.:-' }).optional(),
  REDIS_STREAMS_BLOCK_MS: int(10, 60_000, 1000),

  // ---- sslcommerz
  SSLCOMMERZ_STORE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be the store id SSLCommerz issued (letters, digits, _.-)' }).optional(),
  SSLCOMMERZ_STORE_PASSWORD: z.string().min(1).optional(),
  SSLCOMMERZ_LIVE: bool,
  SSLCOMMERZ_API_URL: httpUrl('http://127.0.0.1:8080').optional(),
  SSLCOMMERZ_SUCCESS_URL: returnUrl.default('/?payment=success'),
  SSLCOMMERZ_FAIL_URL: returnUrl.default('/?payment=fail'),
  SSLCOMMERZ_CANCEL_URL: returnUrl.default('/?payment=cancel'),

  // ---- hardening: inbound byte budgets of ws and rtc clients, per connection and per address (docs/security.md)
  WS_RATE_BYTES_PER_SEC: int(1024, 1024 * 1024 * 1024, 65_536),
  WS_RATE_BYTES_BURST: int(1024, 1024 * 1024 * 1024, 262_144),
  WS_IP_RATE_BYTES_PER_SEC: int(1024, 1024 * 1024 * 1024, 262_144),
  WS_IP_RATE_BYTES_BURST: int(1024, 1024 * 1024 * 1024, 1024 * 1024),

  // ---- operations
  METRICS: bool,
  METRICS_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
  ADMIN_PASSWORD: z.string().min(12, { error: 'must be at least 12 characters' }).optional()
})

type Env = z.infer<typeof EnvSchema>

/** Which variables each gateway cannot start without. */
const REQUIRED: Partial<Record<GatewayName, Array<keyof Env>>> = {
  stripe: ['STRIPE_WEBHOOK_SECRET'],
  sms: ['TWILIO_AUTH_TOKEN'],
  sslcommerz: ['SSLCOMMERZ_STORE_ID', 'SSLCOMMERZ_STORE_PASSWORD'],
  external: ['EXTERNAL_API_KEYS'],
  kafka: ['KAFKA_BROKERS'],
  mqtt: ['MQTT_URL'],
  nats: ['NATS_URL']
}

/** Lists whose empty value is a choice (nothing allowed), not "use the default". */
const EMPTY_MEANS_NONE = new Set(['PUBLIC_ROOMS', 'CLIENT_PUBLISH_ROOMS'])

export function loadConfig (raw: NodeJS.ProcessEnv | Record<string, string | undefined>) {
  const known = Object.keys(EnvSchema.shape)
  const present: Record<string, string> = {}
  for (const key of known) {
    const value = raw[key]
    if (value === undefined) continue
    // an empty room list set on purpose means "none" (CLIENT_PUBLISH_ROOMS= closes client publishing)
    if (value.trim() !== '' || EMPTY_MEANS_NONE.has(key)) present[key] = value.trim()
  }
  const parsed = EnvSchema.safeParse(present)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message)
  }
  const env = parsed.data
  const gateways = new Set(env.GATEWAYS)
  for (const gateway of gateways) {
    for (const variable of REQUIRED[gateway] ?? []) {
      if (env[variable] === undefined) throw new ConfigError(variable, `is required by the ${gateway} gateway`)
    }
  }
  if (env.REDIS_URL !== undefined && env.REDIS_CLUSTER_NODES !== undefined) {
    throw new ConfigError('REDIS_CLUSTER_NODES', 'cannot be used together with REDIS_URL (set one of them)')
  }
  if (gateways.has('redis-streams') && env.REDIS_STREAMS_URL === undefined && env.REDIS_URL === undefined) {
    throw new ConfigError('REDIS_STREAMS_URL', 'is required by the redis-streams gateway (or set REDIS_URL)')
  }
  return { ...env, gateways, trustProxy: parseTrustProxy(env.TRUST_PROXY) }
}

export type Config = ReturnType<typeof loadConfig>

/** Fastify's trustProxy: true/false, a hop count, or a comma list of addresses/CIDRs. */
function parseTrustProxy (value: string): boolean | number | string[] {
  if (value === 'true') return true
  if (value === 'false' || value === '') return false
  if (/^\d+$/.test(value)) return Number(value)
  return value.split(',').map((s) => s.trim()).filter(Boolean)
}
