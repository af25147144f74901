import fp from 'fastify-plugin'
import Stripe from 'stripe'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { isFunction, parseOptions } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { createStripeVerifier, DEFAULT_TOLERANCE_S } from '../lib/stripe/verify.js'
import { StripeEventProcessor, DEFAULT_DEDUPE_TTL_MS, DEFAULT_HANDLER_TIMEOUT_MS } from '../lib/stripe/process.js'
import type { StripeEventHandlers } from '../lib/stripe/types.js'
import { stripeRoutes } from '../routes/stripe.js'

export { publishStripeEvent, stripeUserId, STRIPE_ROOM } from '../lib/stripe/publish.js'
export type { StripeEventOf, StripeEventType } from '../lib/stripe/types.js'
export { MemoryDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the Stripe API client of the stripe gateway; decorated only when `secretKey` or `client` is given */
    stripe: Stripe
  }
}

/** What every Stripe event handler receives next to its event. */
export interface StripeHandlerContext {
  /** the shared room registry (`app.rooms`) */
  readonly rooms: RoomRegistry
  /** the request's logger, bound to the event id and type */
  readonly log: FastifyBaseLogger
  /** the Stripe API client; throws GW_STRIPE_NO_CLIENT when neither `secretKey` nor `client` was given */
  readonly stripe: Stripe
  /** aborted when the handlers' time budget runs out: pass it on to fetch or long work */
  readonly signal: AbortSignal
  /** the webhook request */
  readonly request: FastifyRequest
}

export type StripeHandlers = StripeEventHandlers<StripeHandlerContext>

export interface StripeGatewayOptions {
  /** route of the webhook endpoint; default `/webhooks/stripe` */
  path?: string
  /** endpoint signing secret(s), `whsec_...`; several during a rotation (each is tried) */
  webhookSecret: string | string[]
  /** handlers by event type (the event narrowed to that type) and `'*'` for every event */
  on?: StripeHandlers
  /** where handled event ids are remembered; default a MemoryDedupeStore (one instance) */
  store?: DedupeStore
  /** the handlers' time budget per delivery in ms; past it the answer is 500; default 10000 */
  handlerTimeoutMs?: number
  /** how long a handled event id is remembered in ms; default 4 days (Stripe retries for 3) */
  dedupeTtlMs?: number
  /** seconds a signature's timestamp stays acceptable; default 300 */
  tolerance?: number
  /** largest webhook body in bytes; default 1 MiB */
  bodyLimit?: number
  /** secret (`sk_...`) or restricted (`rk_...`) key for the Stripe API client `ctx.stripe` / `app.stripe` */
  secretKey?: string
  /** an existing Stripe client instead of `secretKey` */
  client?: Stripe
  /** options for the client built from `secretKey` (`apiVersion`, `maxNetworkRetries`, `host`, `port`, ...) */
  clientOptions?: Stripe.StripeConfig
  /** decorate the instance with the client as `app.stripe` when there is one; default true */
  decorate?: boolean
}

const PLUGIN = 'fastify-gateways/stripe'
const WHSEC = /^whsec_[A-Za-z0-9+/=_-]+$/
const whsec = z.string().regex(WHSEC, { error: 'must be an endpoint signing secret (whsec_...)' })

const StripeOptionsSchema = z.strictObject({
  path: z.string().startsWith('/', { error: 'must start with /' }).default('/webhooks/stripe'),
  webhookSecret: z.union([whsec, z.array(whsec).min(1, { error: 'needs at least one secret' })], {
    error: 'must be a whsec_... secret or a non-empty array of them'
  }),
  on: z.record(z.string().min(1), z.custom<(...args: any[]) => unknown>(isFunction, { error: 'must be a function' })).default({}),
  store: z.custom<DedupeStore>((v) => ['claim', 'complete', 'release', 'wait', 'close']
    .every((m) => typeof (v as Record<string, unknown> | null)?.[m] === 'function'), {
    error: 'must implement DedupeStore (claim, complete, release, wait, close)'
  }).optional(),
  handlerTimeoutMs: z.number().int().min(1).max(600_000).default(DEFAULT_HANDLER_TIMEOUT_MS),
  dedupeTtlMs: z.number().int().min(1000).default(DEFAULT_DEDUPE_TTL_MS),
  tolerance: z.number().int().min(1).max(24 * 3600).default(DEFAULT_TOLERANCE_S),
  bodyLimit: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  secretKey: z.string().regex(/^(sk|rk)_\S+$/, { error: 'must be a Stripe secret (sk_...) or restricted (rk_...) key' }).optional(),
  client: z.custom<Stripe>((v) => typeof v === 'object' && v !== null && typeof (v as Stripe).webhooks === 'object' &&
    typeof (v as Stripe).customers === 'object', { error: 'must be a Stripe client (new Stripe(key))' }).optional(),
  clientOptions: z.record(z.string(), z.unknown()).optional(),
  decorate: z.boolean().default(true)
}).refine((o) => !(o.client !== undefined && o.secretKey !== undefined), {
  error: 'client and secretKey are exclusive: pass one', path: ['client']
}).refine((o) => !(o.client !== undefined && o.clientOptions !== undefined), {
  error: 'clientOptions apply to a client built from secretKey, not to a given client', path: ['clientOptions']
})

async function stripeGatewayPlugin (app: FastifyInstance, raw: StripeGatewayOptions) {
  const options = parseOptions(PLUGIN, StripeOptionsSchema, raw)
  const rooms = await ensureRooms(app)
  const secrets = typeof options.webhookSecret === 'string' ? [options.webhookSecret] : options.webhookSecret
  const verifier = createStripeVerifier({ secrets, tolerance: options.tolerance })

  const client = options.client ?? (options.secretKey === undefined
    ? undefined
    : new Stripe(options.secretKey, {
      appInfo: { name: 'fastify-gateways' },
      ...(options.clientOptions as Stripe.StripeConfig | undefined)
    }))
  if (client !== undefined && options.decorate) {
    if (app.hasDecorator('stripe')) {
      throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, 'decorate: app.stripe is already decorated (a second stripe gateway?): pass decorate: false')
    }
    app.decorate('stripe', client)
  }

  const ownStore = options.store === undefined
  const store = options.store ?? new MemoryDedupeStore()
  const processor = new StripeEventProcessor<StripeHandlerContext>({
    store,
    handlers: options.on as StripeHandlers,
    handlerTimeoutMs: options.handlerTimeoutMs,
    dedupeTtlMs: options.dedupeTtlMs
  })
  const makeContext = (request: FastifyRequest, event: Stripe.Event, signal: AbortSignal): StripeHandlerContext => ({
    rooms,
    log: request.log.child({ stripeEvent: event.id, stripeType: event.type }),
    get stripe (): Stripe {
      if (client === undefined) throw new GatewayErrors.STRIPE_NO_CLIENT()
      return client
    },
    signal,
    request
  })

  await app.register(async function stripeScope (scope) {
    await stripeRoutes(scope, { path: options.path, bodyLimit: options.bodyLimit, verifier, processor, makeContext })
  })

  if (ownStore) app.addHook('onClose', async () => { await store.close() })
}

/**
 * The stripe gateway: `POST /webhooks/stripe` verified against every configured secret, each event id handled
 * once, typed handlers per event type. Its raw-body parsers stay inside its own scope.
 */
export const stripeGateway = fp(stripeGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default stripeGateway
