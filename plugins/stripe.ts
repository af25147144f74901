import fp from 'fastify-plugin'
import { z } from 'zod'
import type Stripe from 'stripe'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { intOption, isFunction, parseOptions } from '../lib/options.js'
import { loadPeer } from '../lib/peer.js'
import { GatewayErrors } from '../lib/errors.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryDedupeStore, isDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { WebhookPipeline, DEFAULT_DEDUPE_TTL_MS, DEFAULT_HANDLER_TIMEOUT_MS } from '../lib/webhooks/pipeline.js'
import { handlersFor } from '../lib/webhooks/dispatch.js'
import { createStripeVerifier, DEFAULT_TOLERANCE_S } from '../lib/stripe/verify.js'
import { publishStripeEvent } from '../lib/stripe/publish.js'
import type { StripeEventHandler, StripeEventHandlers, StripeModule } from '../lib/stripe/types.js'
import { stripeRoutes } from '../routes/stripe.js'

export { publishStripeEvent, stripeUserId, STRIPE_ROOM } from '../lib/stripe/publish.js'
export type { StripeEventOf, StripeEventType } from '../lib/stripe/types.js'
export { MemoryDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The Stripe API client of the stripe gateway. Without `secretKey` or `client`, reading it throws
     * GW_STRIPE_NO_CLIENT (the gateway still verifies webhooks).
     */
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

/**
 * Options of the client built from `secretKey`: the `stripe` package's own `StripeConfig` (an interface of ours, so
 * the declarations name it without reaching into the package's internal files).
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- a named alias of the SDK's interface
export interface StripeClientOptions extends Stripe.StripeConfig {}

const PLUGIN = 'fastify-gateways/stripe'
const WHSEC = /^whsec_[A-Za-z0-9+/=_-]+$/
const whsec = z.string().regex(WHSEC, { error: 'must be an endpoint signing secret (whsec_...)' })
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null

const StripeOptionsSchema = z.strictObject({
  /** route of the webhook endpoint */
  path: z.string().startsWith('/', { error: 'must start with /' }).default('/webhooks/stripe'),
  /** endpoint signing secret(s), `whsec_...`; several during a rotation (each is tried) */
  webhookSecret: z.union([whsec, z.array(whsec).min(1, { error: 'needs at least one secret' })], {
    error: 'must be a whsec_... secret or a non-empty array of them'
  }),
  /** handlers by event type (the event narrowed to that type) and `'*'` for every event, run after the typed one */
  on: z.custom<StripeHandlers>()
    .pipe(z.record(z.string().min(1), z.custom<StripeEventHandler<Stripe.Event, StripeHandlerContext>>(isFunction, { error: 'must be a function' })))
    .default({}),
  /** publish each handled event as `stripe.<type>` to room `stripe` and the user's room (what server.ts does) */
  publish: z.boolean().default(false),
  /** where handled event ids are remembered; default a MemoryDedupeStore (one instance) */
  store: z.custom<DedupeStore>(isDedupeStore, { error: 'must implement DedupeStore (claim, complete, release, wait, close)' }).optional(),
  /** the handlers' time budget per delivery in ms; past it the answer is 500 */
  handlerTimeoutMs: intOption(1, 600_000, DEFAULT_HANDLER_TIMEOUT_MS),
  /** how long a handled event id is remembered in ms (Stripe retries for 3 days) */
  dedupeTtlMs: z.number().int().min(1000).default(DEFAULT_DEDUPE_TTL_MS),
  /** seconds a signature's timestamp may be off from now, either way */
  tolerance: intOption(1, 24 * 3600, DEFAULT_TOLERANCE_S),
  /** largest webhook body in bytes */
  bodyLimit: intOption(1024, 64 * 1024 * 1024, 1024 * 1024),
  /** secret (`sk_...`) or restricted (`rk_...`) key for the Stripe API client `ctx.stripe` / `app.stripe` */
  secretKey: z.string().regex(/^(sk|rk)_\S+$/, { error: 'must be a Stripe secret (sk_...) or restricted (rk_...) key' }).optional(),
  /** an existing Stripe client instead of `secretKey` */
  client: z.custom<Stripe>((v) => isObject(v) && isObject(v.webhooks) && isObject(v.customers),
    { error: 'must be a Stripe client (new Stripe(key))' }).optional(),
  /** options for the client built from `secretKey` (`apiVersion`, `maxNetworkRetries`, `host`, `port`, ...) */
  clientOptions: z.custom<StripeClientOptions>(isObject, { error: 'must be an object of Stripe client options' }).optional(),
  /** decorate the instance with the client as `app.stripe`; false for a second stripe gateway */
  decorate: z.boolean().default(true)
}).refine((o) => !(o.client !== undefined && o.secretKey !== undefined), {
  error: 'client and secretKey are exclusive: pass one', path: ['client']
}).refine((o) => !(o.client !== undefined && o.clientOptions !== undefined), {
  error: 'clientOptions apply to a client built from secretKey, not to a given client', path: ['clientOptions']
})

export type StripeGatewayOptions = z.input<typeof StripeOptionsSchema>

async function stripeGatewayPlugin (app: FastifyInstance, raw: StripeGatewayOptions) {
  const options = parseOptions(PLUGIN, StripeOptionsSchema, raw)
  // the SDK verifies signatures, so it is needed from the start; loaded only by hosts that register this gateway
  const StripeSdk = (await loadPeer<{ default: StripeModule }>('stripe', 'stripe', () => import('stripe'))).default
  const rooms = await ensureRooms(app)
  const secrets = typeof options.webhookSecret === 'string' ? [options.webhookSecret] : options.webhookSecret
  const verifier = createStripeVerifier({ stripe: StripeSdk, secrets, tolerance: options.tolerance })

  const client = options.client ?? (options.secretKey === undefined
    ? undefined
    : new StripeSdk(options.secretKey, { appInfo: { name: 'fastify-gateways' }, ...options.clientOptions }))
  const stripeClient = (): Stripe => {
    if (client === undefined) throw new GatewayErrors.STRIPE_NO_CLIENT()
    return client
  }
  if (options.decorate) {
    if (app.hasDecorator('stripe')) {
      throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, 'decorate: app.stripe is already decorated (a second stripe gateway?): pass decorate: false')
    }
    // always there, as its type says: without a key, reading it says how to configure one
    app.decorate('stripe', { getter: stripeClient })
  }

  const ownStore = options.store === undefined
  const store = options.store ?? new MemoryDedupeStore()
  const pipeline = new WebhookPipeline({
    provider: 'stripe',
    store,
    counters: rooms.counters,
    handlerTimeoutMs: options.handlerTimeoutMs,
    dedupeTtlMs: options.dedupeTtlMs,
    timeoutReason: (key, budgetMs) => new GatewayErrors.STRIPE_TIMEOUT(key, String(budgetMs))
  })
  const handlers = options.on as Record<string, StripeEventHandler<Stripe.Event, StripeHandlerContext> | undefined>

  await app.register(async function stripeScope (scope) {
    await stripeRoutes(scope, {
      path: options.path,
      bodyLimit: options.bodyLimit,
      pipeline,
      verify: (body, header) => verifier.verify(body, header),
      async handle (event, request, signal) {
        const ctx: StripeHandlerContext = {
          rooms,
          log: request.log.child({ stripeEvent: event.id, stripeType: event.type }),
          get stripe () { return stripeClient() },
          signal,
          request
        }
        for (const handler of handlersFor(handlers, event.type)) {
          if (signal.aborted) return
          await handler(event, ctx)
        }
      },
      publish: options.publish ? async (event, request) => { await publishStripeEvent(rooms, event, request.log) } : undefined
    })
  })

  if (ownStore) app.addHook('onClose', async () => { await store.close() })
}

/**
 * The stripe gateway: `POST /webhooks/stripe` verified against every configured secret, each event id handled
 * once through the shared webhook pipeline, typed handlers per event type. Its raw-body parsers stay inside its own
 * scope. The `stripe` package is an optional peer dependency, loaded when the gateway registers.
 */
export const stripeGateway = fp(stripeGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default stripeGateway
