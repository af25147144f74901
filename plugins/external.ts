import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { intOption, parseOptions, isFunction } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import { MemoryDedupeStore, isDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { WebhookPipeline, DEFAULT_HANDLER_TIMEOUT_MS } from '../lib/webhooks/pipeline.js'
import { ApiKeyTable, bearerKey, type ApiKey, type ApiKeySpec } from '../lib/external/api-keys.js'
import { Idempotency } from '../lib/external/idempotency.js'
import { DEFAULT_TOLERANCE_S, SECRET_PATTERN, WebhookVerifier } from '../lib/external/standard-webhooks.js'
import { buildOpenApi } from '../lib/external/openapi.js'
import { externalRoomsRoutes } from '../routes/external-rooms.js'
import { externalHooksRoutes } from '../routes/external-hooks.js'
import { externalOpenApiRoutes } from '../routes/external-openapi.js'

/** What a Standard Webhooks handler of host code gets besides the payload. */
export interface ExternalHookContext {
  source: string
  /** the `webhook-id` header: the same for every retry of one message */
  webhookId: string
  /** the `webhook-timestamp` header, seconds since the epoch */
  timestamp: number
  /** the verified body, byte for byte */
  rawBody: Buffer
  request: FastifyRequest
  log: FastifyBaseLogger
  /** aborted when the handlers' time budget runs out: pass it on to fetch or long work */
  signal: AbortSignal
}

/**
 * Runs once per verified, not yet handled webhook of its source, before the event is published. Throwing answers
 * 500 and leaves the webhook-id unhandled, so the sender's retry runs it again.
 */
export type ExternalHookHandler = (payload: unknown, context: ExternalHookContext) => unknown

export interface ExternalHooks {
  /** adds a handler for `source` (which must have secrets); returns a function that removes it */
  on (source: string, handler: ExternalHookHandler): () => void
  /** the configured webhook sources */
  readonly sources: readonly string[]
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the NAME of the API key that authenticated this request (external gateway); null without one */
    apiKeyName: string | null
  }
  interface FastifyInstance {
    /** handlers of verified Standard Webhooks, per source (external gateway) */
    externalHooks: ExternalHooks
  }
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/
const NAME_RULE = 'must be 1 to 64 characters of A-Za-z0-9_.-'
const secret = z.string().regex(SECRET_PATTERN, 'must be whsec_ followed by base64')
const handler = z.custom<ExternalHookHandler>(isFunction, { message: 'must be a function (payload, context) => unknown' })
const store = z.custom<DedupeStore>(isDedupeStore, {
  message: 'must implement the DedupeStore interface (claim, complete, release, wait, close)'
})

const ExternalOptionsSchema = z.strictObject({
  /** where the API is mounted; every route is under it */
  basePath: z.string().regex(/^\/([A-Za-z0-9_.~-]+(\/[A-Za-z0-9_.~-]+)*)?$/, 'must be a path such as /api, without a trailing slash').default('/api'),
  /** API key name → key, or { key, rooms: globs } to limit the key to some rooms */
  apiKeys: z.record(z.string().regex(NAME, NAME_RULE), z.union([
    z.string().min(1, 'must not be empty'),
    z.strictObject({ key: z.string().min(1, 'must not be empty'), rooms: z.array(z.string().min(1)).optional() })
  ])).default({}),
  /** Standard Webhooks source → its secret(s); several during a rotation */
  webhookSecrets: z.record(z.string().regex(NAME, NAME_RULE), z.union([secret, z.array(secret).min(1)])).default({}),
  /** source → handler(s) of its verified webhooks */
  on: z.record(z.string(), z.union([handler, z.array(handler)])).default({}),
  /** largest request body in bytes (publish and webhooks); over it: 413 */
  bodyLimit: z.number().int().min(256).max(64 * 1024 * 1024).default(65_536),
  /** requests per window per API key (per client address without a key); false: no limit */
  rateLimit: z.union([z.literal(false), z.strictObject({
    max: z.number().int().min(1).default(600),
    timeWindowMs: z.number().int().min(1).default(60_000)
  })]).default({ max: 600, timeWindowMs: 60_000 }),
  /** where Idempotency-Key answers are kept; default a bounded in-memory store */
  store: store.optional(),
  /** where handled webhook-ids are kept; default a bounded in-memory store */
  hookStore: store.optional(),
  idempotencyTtlMs: z.number().int().min(1000).default(24 * 3600 * 1000),
  /** how long a repeat waits for the first request (or webhook) with the same key still in flight; then 409 */
  inFlightWaitMs: z.number().int().min(1).max(600_000).default(10_000),
  hookDedupeTtlMs: z.number().int().min(1000).default(3 * 24 * 3600 * 1000),
  /** the webhook handlers' time budget per delivery in ms; past it 500 and the webhook-id is not marked handled */
  hookHandlerTimeoutMs: intOption(1, 600_000, DEFAULT_HANDLER_TIMEOUT_MS),
  webhookToleranceS: z.number().int().min(1).max(24 * 3600).default(DEFAULT_TOLERANCE_S),
  /** serve the OpenAPI document at `<basePath>/openapi.json` */
  openapi: z.boolean().default(true)
})

export type ExternalOptions = z.input<typeof ExternalOptionsSchema>

const PLUGIN = 'fastify-gateways/external'

async function externalGatewayFn (app: FastifyInstance, raw: ExternalOptions) {
  const options = parseOptions(PLUGIN, ExternalOptionsSchema, raw)
  let keys: ApiKeyTable
  try {
    keys = new ApiKeyTable(options.apiKeys as Record<string, ApiKeySpec>)
  } catch (err) {
    throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, `apiKeys: ${(err as Error).message}`)
  }
  const verifiers = new Map<string, WebhookVerifier>()
  for (const [source, secrets] of Object.entries(options.webhookSecrets)) {
    verifiers.set(source, new WebhookVerifier(typeof secrets === 'string' ? [secrets] : secrets, { toleranceS: options.webhookToleranceS }))
  }
  const handlers = new Map<string, ExternalHookHandler[]>()
  const externalHooks: ExternalHooks = {
    sources: [...verifiers.keys()],
    on (source, fn) {
      if (!verifiers.has(source)) throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, `on: no webhook secret for source ${JSON.stringify(source)}`)
      if (typeof fn !== 'function') throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, 'on: the handler must be a function')
      const list = handlers.get(source) ?? []
      list.push(fn)
      handlers.set(source, list)
      return () => {
        const current = handlers.get(source) as ExternalHookHandler[]
        const index = current.indexOf(fn)
        if (index >= 0) current.splice(index, 1)
      }
    }
  }
  for (const [source, fns] of Object.entries(options.on)) {
    for (const fn of Array.isArray(fns) ? fns : [fns]) externalHooks.on(source, fn)
  }

  const rooms = await ensureRooms(app)
  const ownStores: DedupeStore[] = []
  const idempotencyStore = options.store ?? own(new MemoryDedupeStore())
  const hookStore = options.hookStore ?? own(new MemoryDedupeStore())
  function own (created: DedupeStore): DedupeStore {
    ownStores.push(created)
    return created
  }
  const idempotency = new Idempotency(idempotencyStore, { ttlMs: options.idempotencyTtlMs, waitMs: options.inFlightWaitMs })

  app.decorate('externalHooks', externalHooks)
  if (!app.hasRequestDecorator('apiKeyName')) app.decorateRequest('apiKeyName', null)

  const maxParamLength = (app.initialConfig as { routerOptions?: { maxParamLength?: number } }).routerOptions?.maxParamLength
  if (maxParamLength === undefined || maxParamLength < 384) {
    app.log.warn({ maxParamLength: maxParamLength ?? 'default' }, 'external gateway: set routerOptions.maxParamLength to 512 or more, ' +
      'or room names longer than Fastify\'s limit (100 by default; 3 bytes per percent-encoded character) get 414 on /rooms/:room')
  }

  // The API key behind each request of the scope: an ApiKey, null for a key that matches none, absent without one.
  const presented = new WeakMap<FastifyRequest, ApiKey | null>()

  await app.register(async function externalScope (scope) {
    // 1. onRequest (scope): find the key, so the limiter below knows its name
    scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const authorization = request.headers.authorization
      if (authorization === undefined) return
      const token = bearerKey(authorization)
      if (token === null) return
      const key = keys.lookup(token)
      presented.set(request, key)
      if (key === null) return
      request.apiKeyName = key.name
      const log = request.log.child({ apiKey: key.name })
      request.log = log
      reply.log = log
    })
    // 2. onRequest (route level, so after the scope's hooks): @fastify/rate-limit, keyed by key name or address
    if (options.rateLimit !== false) {
      await scope.register(rateLimit, {
        max: options.rateLimit.max,
        timeWindow: options.rateLimit.timeWindowMs,
        hook: 'onRequest',
        keyGenerator: (request) => request.apiKeyName === null ? `ip:${request.ip}` : `key:${request.apiKeyName}`,
        errorResponseBuilder: (_request, context) => new GatewayErrors.EXTERNAL_RATE_LIMITED(context.after)
      })
    }
    // 3. preParsing (rooms routes): refuse requests without a valid key, before reading their bodies
    await scope.register(externalRoomsRoutes, {
      rooms,
      idempotency,
      bodyLimit: options.bodyLimit,
      keyOf: (request) => {
        const key = presented.get(request)
        if (key !== undefined && key !== null) return key
        const message = key === undefined
          ? (request.headers.authorization === undefined ? 'missing API key: send Authorization: Bearer <key>' : 'the Authorization header must be Bearer <key>')
          : 'unknown API key'
        throw new GatewayErrors.EXTERNAL_UNAUTHORIZED(message)
      }
    })
    await scope.register(externalHooksRoutes, {
      rooms,
      verifiers,
      handlers,
      pipeline: new WebhookPipeline({
        provider: 'hooks',
        store: hookStore,
        counters: rooms.counters,
        handlerTimeoutMs: options.hookHandlerTimeoutMs,
        dedupeTtlMs: options.hookDedupeTtlMs,
        waitMs: options.inFlightWaitMs,
        timeoutReason: (key, budgetMs) => new GatewayErrors.HOOK_TIMEOUT(JSON.stringify(key), String(budgetMs))
      }),
      bodyLimit: options.bodyLimit
    })
    if (options.openapi) {
      await scope.register(externalOpenApiRoutes, {
        document: buildOpenApi({
          basePath: options.basePath,
          sources: [...verifiers.keys()],
          bodyLimit: options.bodyLimit,
          rateLimit: options.rateLimit
        })
      })
    }
  }, { prefix: options.basePath === '/' ? '' : options.basePath })

  app.addHook('onClose', async () => {
    for (const created of ownStores) await created.close()
  })
}

export const externalGateway = fp(externalGatewayFn, { fastify: '5.x', name: PLUGIN })
export default externalGateway
