import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { intOption, isFunction, parseOptions, pathOption } from '../lib/options.js'
import { loadPeer } from '../lib/peer.js'
import { GatewayErrors } from '../lib/errors.js'
import { isRoomName, ROOM_NAME_RULE } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryDedupeStore, isDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { WebhookPipeline, DEFAULT_HANDLER_TIMEOUT_MS } from '../lib/webhooks/pipeline.js'
import { publicUrlOption } from '../lib/webhooks/public-url.js'
import type { TwilioParams, ValidateRequest } from '../lib/sms/signature.js'
import { ACCOUNT_SID, E164, MESSAGING_SERVICE_SID, type InboundSms, type SmsStatus } from '../lib/sms/schemas.js'
import {
  createSender, type HttpClientOption, type SentSms, type SmsClient, type SmsMessage
} from '../lib/sms/client.js'
import { smsRoutes } from '../routes/sms.js'

export { SmsSendError, type SmsClient, type SmsMessage, type SentSms, type HttpClientOption } from '../lib/sms/client.js'
export type { InboundSms, SmsStatus, MessageStatus } from '../lib/sms/schemas.js'
export type { TwilioParams } from '../lib/sms/signature.js'

/** `app.sms`: outbound SMS through Twilio's REST API. */
export interface SmsApi {
  /**
   * Sends `body` to `to` (E.164). Resolves to Twilio's message sid and initial status. Throws GW_SMS_INVALID (400)
   * for invalid input, GW_SMS_NOT_CONFIGURED (500) without an account or sender, `SmsSendError` when Twilio
   * refuses or cannot be reached. The twilio REST client is loaded on the first call.
   */
  send (message: SmsMessage): Promise<SentSms>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** outbound SMS of the sms gateway */
    sms: SmsApi
  }
}

/** What `on.received` and `on.status` handlers receive next to the parsed payload. */
export interface SmsHandlerContext {
  /** the shared room registry (`app.rooms`) */
  readonly rooms: RoomRegistry
  /** the request's logger, bound to the message sid */
  readonly log: FastifyBaseLogger
  /** every form field Twilio sent, as signed (a repeated name as an array) */
  readonly params: TwilioParams
  /** `app.sms`, to send further messages */
  readonly sms: SmsApi
  /** aborted when the handler's time budget runs out: pass it on to fetch or long work */
  readonly signal: AbortSignal
  /** the webhook request */
  readonly request: FastifyRequest
}

/** A reply to the sender: one text, several (one `<Message>` each), or nothing. */
export type SmsReply = string | string[] | null | undefined | void

export interface SmsHandlers {
  /** a verified inbound message; what it returns is sent back to the sender as TwiML `<Message>`s */
  received?: (message: InboundSms, ctx: SmsHandlerContext) => SmsReply | Promise<SmsReply>
  /** a verified status callback of a message sent earlier */
  status?: (status: SmsStatus, ctx: SmsHandlerContext) => void | Promise<void>
}

const PLUGIN = 'fastify-gateways/sms'
const token = z.string().min(1, { error: 'must not be empty' })

const SmsOptionsSchema = z.strictObject({
  /** Twilio auth token(s) that sign webhooks; several during a rotation (any one verifying is enough); the first one
   * also authenticates outbound sends */
  authToken: z.union([token, z.array(token).min(1, { error: 'needs at least one token' })], {
    error: 'must be a Twilio auth token or a non-empty array of them'
  }).transform((v) => typeof v === 'string' ? [v] : v),
  /** account SID (`AC...`) for outbound sends */
  accountSid: z.string().regex(ACCOUNT_SID, { error: 'must be AC followed by 32 hex digits' }).optional(),
  /** default sender of outbound sends: an E.164 number or a Messaging Service SID (`MG...`) */
  from: z.string().refine((v) => E164.test(v) || MESSAGING_SERVICE_SID.test(v), {
    error: 'must be an E.164 number (+15551234567) or a Messaging Service SID (MG...)'
  }).optional(),
  /** the externally visible base URL (`https://api.example.com`): webhook URLs are this plus the request path and
   * query, and outbound messages get `<publicUrl><statusPath>` as status callback */
  publicUrl: publicUrlOption.optional(),
  /** inbound message route */
  path: pathOption.default('/webhooks/sms'),
  /** status callback route */
  statusPath: pathOption.default('/webhooks/sms/status'),
  /** room that `sms.received` and `sms.status` are published to */
  room: z.string().refine(isRoomName, { error: `must be a room name (${ROOM_NAME_RULE})` }).default('sms'),
  /** publish to `room` */
  publish: z.boolean().default(true),
  /** reply sent to every inbound message for which `on.received` returns nothing */
  autoReply: z.string().min(1).max(1600).optional(),
  on: z.strictObject({
    received: z.custom<NonNullable<SmsHandlers['received']>>(isFunction, { error: 'must be a function' }).optional(),
    status: z.custom<NonNullable<SmsHandlers['status']>>(isFunction, { error: 'must be a function' }).optional()
  }).default({}),
  /** where handled deliveries (MessageSid + status) are remembered; default a MemoryDedupeStore (one instance) */
  store: z.custom<DedupeStore>(isDedupeStore, { error: 'must implement DedupeStore (claim, complete, release, wait, close)' }).optional(),
  /** how long a handled delivery is remembered in ms: a redelivery (or a replay) within it runs nothing */
  dedupeTtlMs: z.number().int().min(1000).default(24 * 3600 * 1000),
  /** the handlers' time budget per webhook in ms (Twilio gives up after 15 s) */
  handlerTimeoutMs: intOption(1, 600_000, DEFAULT_HANDLER_TIMEOUT_MS),
  /** largest webhook body in bytes */
  bodyLimit: intOption(1024, 16 * 1024 * 1024, 64 * 1024),
  /** inbound webhook requests per minute per source IP; past it 429 */
  ratePerMin: intOption(1, 1_000_000, 600),
  /** a ready client for outbound sends (e.g. an existing `twilio(...)` client); twilio is then never loaded */
  client: z.custom<SmsClient>((v) => typeof (v as SmsClient | null)?.messages?.create === 'function', {
    error: 'must have messages.create (a twilio client)'
  }).optional(),
  /** a `twilio.RequestClient` for the REST client, or a factory `(twilio) => RequestClient` (keeps twilio lazy) */
  httpClient: z.custom<HttpClientOption>((v) => typeof v === 'function' ||
    typeof (v as { request?: unknown } | null)?.request === 'function', {
    error: 'must be a twilio.RequestClient or a function (twilio) => RequestClient'
  }).optional(),
  /** decorate the instance with `app.sms`; false for a second sms gateway */
  decorate: z.boolean().default(true)
}).refine((o) => o.path !== o.statusPath, { error: 'must differ from path', path: ['statusPath'] })
  .refine((o) => !(o.client !== undefined && o.httpClient !== undefined), {
    error: 'httpClient applies to the client built from accountSid, not to a given client', path: ['httpClient']
  })

export type SmsGatewayOptions = z.input<typeof SmsOptionsSchema>

async function smsGatewayPlugin (app: FastifyInstance, raw: SmsGatewayOptions) {
  const options = parseOptions(PLUGIN, SmsOptionsSchema, raw)
  // twilio's webhook validator module alone (about 15 ms to load); the REST client waits for the first send
  const { validateRequest } = await loadPeer<{ validateRequest: ValidateRequest }>('twilio', 'sms',
    () => import('twilio/lib/webhooks/webhooks.js'))
  const rooms = await ensureRooms(app)
  const { room, on } = options

  const sms: SmsApi = {
    send: createSender({
      accountSid: options.accountSid,
      authToken: options.authToken[0],
      from: options.from,
      statusCallback: options.publicUrl === undefined ? undefined : options.publicUrl + options.statusPath,
      client: options.client,
      httpClient: options.httpClient
    })
  }
  if (options.decorate) {
    if (app.hasDecorator('sms')) {
      throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, 'decorate: app.sms is already decorated (a second sms gateway?): pass decorate: false')
    }
    app.decorate('sms', sms)
  }

  const ownStore = options.store === undefined
  const store = options.store ?? new MemoryDedupeStore()
  const pipeline = new WebhookPipeline({
    provider: 'sms',
    store,
    counters: rooms.counters,
    handlerTimeoutMs: options.handlerTimeoutMs,
    dedupeTtlMs: options.dedupeTtlMs,
    timeoutReason: (key, budgetMs) => new GatewayErrors.SMS_TIMEOUT(key, String(budgetMs))
  })
  const context = (request: FastifyRequest, params: TwilioParams, sid: string, signal: AbortSignal): SmsHandlerContext => ({
    rooms, log: request.log.child({ messageSid: sid }), params, sms, signal, request
  })

  await app.register(async function smsScope (scope) {
    // per source IP (request.ip: the client's address when Fastify trusts the proxy), on these routes only
    await scope.register(rateLimit, { max: options.ratePerMin, timeWindow: 60_000 })
    await smsRoutes(scope, {
      path: options.path,
      statusPath: options.statusPath,
      bodyLimit: options.bodyLimit,
      tokens: options.authToken,
      validate: validateRequest,
      publicUrl: options.publicUrl,
      pipeline,
      async received (message, params, request, signal) {
        const reply = await on.received?.(message, context(request, params, message.sid, signal))
        if (reply === undefined || reply === null) return options.autoReply === undefined ? [] : [options.autoReply]
        return (typeof reply === 'string' ? [reply] : reply).filter((text) => typeof text === 'string' && text !== '')
      },
      async status (status, params, request, signal) {
        await on.status?.(status, context(request, params, status.sid, signal))
      },
      publish: options.publish
        ? async (event, data) => { await rooms.publish(room, event, data) }
        : undefined
    })
  })

  if (ownStore) app.addHook('onClose', async () => { await store.close() })
}

/**
 * The sms gateway: Twilio's inbound message and status callback webhooks, verified against `X-Twilio-Signature`
 * with twilio's own validator (and the URL Twilio actually requested), deduplicated by MessageSid and status, handed
 * to typed handlers and published to the `sms` room through the shared webhook pipeline; `app.sms.send` for
 * outbound messages. Its form parser and rate limit stay inside its scope. `twilio` is an optional peer dependency.
 */
export const smsGateway = fp(smsGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default smsGateway
