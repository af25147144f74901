import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { fnOption, formatIssues, intOption, isFunction, parseOptions, pathOption } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import { isRoomName, ROOM_NAME_RULE } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryDedupeStore, isDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { WebhookPipeline, DEFAULT_DEDUPE_TTL_MS, DEFAULT_HANDLER_TIMEOUT_MS } from '../lib/webhooks/pipeline.js'
import { handlersFor } from '../lib/webhooks/dispatch.js'
import { publicUrlOption } from '../lib/webhooks/public-url.js'
import { SslcommerzApi, SANDBOX_URL, LIVE_URL } from '../lib/sslcommerz/api.js'
import { md5Hex } from '../lib/sslcommerz/hash.js'
import { formatAmount } from '../lib/sslcommerz/amount.js'
import { verifyNotification, type LoadOrder } from '../lib/sslcommerz/notification.js'
import { publishSslcommerzEvent } from '../lib/sslcommerz/publish.js'
import { sessionParams } from '../lib/sslcommerz/session.js'
import {
  PAID_STATUSES, RefundInputSchema, UNPAID_STATUSES,
  type RefundAnswer, type RefundInput, type RefundStatus, type SessionInput, type SslcommerzNotification,
  type TransactionQuery, type ValidationAnswer
} from '../lib/sslcommerz/schemas.js'
import { sslcommerzRoutes, type ReturnKind } from '../routes/sslcommerz.js'

export type {
  SslcommerzNotification, ValidationAnswer, SessionInput, RefundInput, RefundAnswer, RefundStatus, TransactionQuery,
  Transaction, NotificationStatus, PaidStatus, UnpaidStatus
} from '../lib/sslcommerz/schemas.js'
export type { LoadOrder, OrderAmount } from '../lib/sslcommerz/notification.js'
export { SSLCOMMERZ_ROOM } from '../lib/sslcommerz/publish.js'

/** `app.sslcommerz`: SSLCommerz's server-to-server APIs with the gateway's store credentials. */
export interface SslcommerzClient {
  /**
   * Opens a payment session (the session API) and resolves to its `GatewayPageURL`: send the buyer there. `userId`
   * travels as `value_a`, so the payment's events also reach `user:<userId>`. The return and IPN URLs default to
   * `publicUrl` plus the gateway's paths. Throws GW_SSLCOMMERZ_INVALID_REQUEST (400) for invalid input and
   * GW_SSLCOMMERZ_API (502) when SSLCommerz refuses or cannot be reached.
   */
  createSession (input: SessionInput): Promise<string>
  /** Asks the Order Validation API about a `val_id` (VALID, VALIDATED or INVALID_TRANSACTION). */
  validate (valId: string): Promise<ValidationAnswer>
  /** Initiates a refund (`status` success, processing or failed; `refund_ref_id` to follow it). */
  refund (input: RefundInput): Promise<RefundAnswer>
  /** The state of a refund (`status` refunded, processing or cancelled). */
  refundStatus (refundRefId: string): Promise<RefundStatus>
  /** Every transaction SSLCommerz has for a `tran_id`. */
  queryByTranId (tranId: string): Promise<TransactionQuery>
  /** The transaction of a session, by its `sessionkey`. */
  queryBySessionKey (sessionKey: string): Promise<TransactionQuery>
  /** the API base URL in use (sandbox, live or `apiUrl`) */
  readonly baseUrl: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** SSLCommerz's APIs (sessions, validation, refunds, queries) of the sslcommerz gateway */
    sslcommerz: SslcommerzClient
  }
}

/** What every SSLCommerz handler receives next to the notification. */
export interface SslcommerzHandlerContext {
  readonly rooms: RoomRegistry
  /** the request's logger, bound to the tran_id, val_id and status */
  readonly log: FastifyBaseLogger
  /** `app.sslcommerz` */
  readonly sslcommerz: SslcommerzClient
  /** where the notification came from: SSLCommerz's IPN, or the buyer's browser returning to a route */
  readonly source: 'ipn' | ReturnKind
  /** aborted when the handlers' time budget runs out */
  readonly signal: AbortSignal
  readonly request: FastifyRequest
  /** the Order Validation API's answer: present for VALID and VALIDATED, absent for the others */
  readonly validation?: ValidationAnswer
}

export type SslcommerzHandler<C> = (notification: SslcommerzNotification, ctx: C) => unknown
type Paid = SslcommerzHandlerContext & { readonly validation: ValidationAnswer }
type Unpaid = SslcommerzHandlerContext & { readonly validation?: undefined }

/** Handlers by the notification's status, then `'*'` for every status (including ones newer than this list). */
export interface SslcommerzHandlers {
  VALID?: SslcommerzHandler<Paid>
  VALIDATED?: SslcommerzHandler<Paid>
  FAILED?: SslcommerzHandler<Unpaid>
  CANCELLED?: SslcommerzHandler<Unpaid>
  UNATTEMPTED?: SslcommerzHandler<Unpaid>
  EXPIRED?: SslcommerzHandler<Unpaid>
  '*'?: SslcommerzHandler<SslcommerzHandlerContext>
}

const PLUGIN = 'fastify-gateways/sslcommerz'
const HANDLER_KEYS = [...PAID_STATUSES, ...UNPAID_STATUSES, '*'] as const
const target = z.string().regex(/^(\/(?!\/)|https?:\/\/)\S*$/, { error: 'must be a path (/...) or an http(s) URL' })

const SslcommerzOptionsSchema = z.strictObject({
  /** the store id SSLCommerz issued */
  storeId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be the store id SSLCommerz issued (letters, digits, _.-)' }),
  /** the store password (API password): a secret, like its MD5 that signs notifications */
  storePassword: z.string().min(1, { error: 'must not be empty' }),
  /** the live API (securepay.sslcommerz.com) instead of the sandbox */
  live: z.boolean().default(false),
  /** a base URL that replaces the sandbox/live host (a proxy, a local fake in tests) */
  apiUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** the externally visible base URL: default return and IPN URLs of sessions are this plus the paths below */
  publicUrl: publicUrlOption.optional(),
  ipnPath: pathOption.default('/webhooks/sslcommerz'),
  successPath: pathOption.default('/payments/sslcommerz/success'),
  failPath: pathOption.default('/payments/sslcommerz/fail'),
  cancelPath: pathOption.default('/payments/sslcommerz/cancel'),
  /** where the buyer's browser is sent (303) after each outcome */
  redirects: z.strictObject({
    success: target.default('/?payment=success'),
    fail: target.default('/?payment=fail'),
    cancel: target.default('/?payment=cancel')
  }).default({ success: '/?payment=success', fail: '/?payment=fail', cancel: '/?payment=cancel' }),
  /** handlers by status (VALID, FAILED, ...) and `'*'` for every status, run after the one of its status */
  on: z.custom<SslcommerzHandlers>()
    .pipe(z.partialRecord(z.enum(HANDLER_KEYS, { error: `must be one of ${HANDLER_KEYS.join(', ')}` }),
      z.custom<SslcommerzHandler<SslcommerzHandlerContext>>(isFunction, { error: 'must be a function' })))
    .default({}),
  /** the host's order of a `tran_id` ({ amount, currency }): a paid amount or currency that differs is refused */
  loadOrder: fnOption<LoadOrder>('(tranId) => ({ amount, currency }) | null'),
  /** publish each accepted notification to `room` and `user:<value_a>` */
  publish: z.boolean().default(true),
  room: z.string().refine(isRoomName, { error: `must be a room name (${ROOM_NAME_RULE})` }).default('sslcommerz'),
  /** where handled notifications (val_id, else tran_id + status) are remembered; default in memory (one instance) */
  store: z.custom<DedupeStore>(isDedupeStore, { error: 'must implement DedupeStore (claim, complete, release, wait, close)' }).optional(),
  dedupeTtlMs: z.number().int().min(1000).default(DEFAULT_DEDUPE_TTL_MS),
  /** the handlers' time budget per notification in ms */
  handlerTimeoutMs: intOption(1, 600_000, DEFAULT_HANDLER_TIMEOUT_MS),
  /** how long one call to SSLCommerz's APIs may take in ms */
  apiTimeoutMs: intOption(100, 120_000, 10_000),
  /** largest notification body in bytes */
  bodyLimit: intOption(1024, 1024 * 1024, 64 * 1024),
  /** decorate the instance with `app.sslcommerz`; false for a second sslcommerz gateway (another store) */
  decorate: z.boolean().default(true)
}).refine((o) => new Set([o.ipnPath, o.successPath, o.failPath, o.cancelPath]).size === 4, {
  error: 'ipnPath, successPath, failPath and cancelPath must differ', path: ['ipnPath']
})

export type SslcommerzGatewayOptions = z.input<typeof SslcommerzOptionsSchema>

async function sslcommerzGatewayPlugin (app: FastifyInstance, raw: SslcommerzGatewayOptions) {
  const options = parseOptions(PLUGIN, SslcommerzOptionsSchema, raw)
  const rooms = await ensureRooms(app)
  const api = new SslcommerzApi({
    baseUrl: options.apiUrl ?? (options.live ? LIVE_URL : SANDBOX_URL),
    storeId: options.storeId,
    storePassword: options.storePassword,
    timeoutMs: options.apiTimeoutMs
  })
  const storePasswordMd5 = md5Hex(options.storePassword)
  const at = (path: string) => options.publicUrl === undefined ? undefined : options.publicUrl + path
  const defaults = {
    successUrl: at(options.successPath),
    failUrl: at(options.failPath),
    cancelUrl: at(options.cancelPath),
    ipnUrl: at(options.ipnPath)
  }

  const client: SslcommerzClient = {
    baseUrl: api.baseUrl,
    async createSession (input) {
      const answer = await api.createSession(sessionParams(input, defaults))
      return answer.GatewayPageURL as string
    },
    validate: async (valId) => await api.validate(valId),
    async refund (input) {
      const parsed = RefundInputSchema.safeParse(input)
      if (!parsed.success) throw new GatewayErrors.SSLCOMMERZ_INVALID_REQUEST(formatIssues(parsed.error.issues, { unknown: 'key' }))
      const amount = formatAmount(parsed.data.amount)
      if (amount === null) throw new GatewayErrors.SSLCOMMERZ_INVALID_REQUEST('amount: must be a positive amount with at most two decimals')
      return await api.refund({
        bank_tran_id: parsed.data.bankTranId,
        refund_amount: amount,
        refund_remarks: parsed.data.remarks,
        refund_trans_id: parsed.data.refundTransId ?? `R${randomBytes(12).toString('hex')}`.slice(0, 25),
        ...(parsed.data.refeId === undefined ? {} : { refe_id: parsed.data.refeId })
      })
    },
    refundStatus: async (refundRefId) => await api.refundStatus(refundRefId),
    queryByTranId: async (tranId) => await api.queryByTranId(tranId),
    queryBySessionKey: async (sessionKey) => await api.queryBySessionKey(sessionKey)
  }
  if (options.decorate) {
    if (app.hasDecorator('sslcommerz')) {
      throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, 'decorate: app.sslcommerz is already decorated (a second sslcommerz gateway?): pass decorate: false')
    }
    app.decorate('sslcommerz', client)
  }

  const ownStore = options.store === undefined
  const store = options.store ?? new MemoryDedupeStore()
  const pipeline = new WebhookPipeline({
    provider: 'sslcommerz',
    store,
    counters: rooms.counters,
    handlerTimeoutMs: options.handlerTimeoutMs,
    dedupeTtlMs: options.dedupeTtlMs,
    timeoutReason: (key, budgetMs) => new GatewayErrors.SSLCOMMERZ_TIMEOUT(key, String(budgetMs))
  })
  const handlers = options.on as Record<string, SslcommerzHandler<SslcommerzHandlerContext> | undefined>

  await app.register(async function sslcommerzScope (scope) {
    await sslcommerzRoutes(scope, {
      ipnPath: options.ipnPath,
      returnPaths: { success: options.successPath, fail: options.failPath, cancel: options.cancelPath },
      redirects: options.redirects,
      bodyLimit: options.bodyLimit,
      pipeline,
      verify: async (form) => await verifyNotification(form, { storePasswordMd5, api, loadOrder: options.loadOrder }),
      async handle (verified, source, request, signal) {
        const { notification } = verified
        const ctx: SslcommerzHandlerContext = {
          rooms,
          log: request.log.child({ tranId: notification.tran_id, valId: notification.val_id, status: notification.status }),
          sslcommerz: client,
          source,
          signal,
          request,
          ...(verified.paid ? { validation: verified.validation } : {})
        }
        for (const handler of handlersFor(handlers, notification.status)) {
          if (signal.aborted) return
          await handler(notification, ctx)
        }
      },
      publish: options.publish
        ? async (notification, request) => { await publishSslcommerzEvent(rooms, notification, request.log, options.room) }
        : undefined
    })
  })

  if (ownStore) app.addHook('onClose', async () => { await store.close() })
}

/**
 * The sslcommerz gateway: the IPN listener (`POST /webhooks/sslcommerz`) and the routes SSLCommerz returns the
 * buyer's browser to, each notification checked by its MD5 `verify_sign` and the Order Validation API, handled once
 * (by `val_id`) through the shared webhook pipeline, typed handlers per status, published to `sslcommerz` and
 * `user:<value_a>`; `app.sslcommerz` for sessions, validation, refunds and queries. Its form parser stays in its scope.
 */
export const sslcommerzGateway = fp(sslcommerzGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default sslcommerzGateway
