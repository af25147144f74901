import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { z } from 'zod'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { isFunction, parseOptions } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import { isRoomName, ROOM_NAME_RULE } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { parseForm, type TwilioParams } from '../lib/sms/form.js'
import { normalizePublicUrl } from '../lib/sms/url.js'
import { ACCOUNT_SID, E164, MESSAGING_SERVICE_SID, type InboundSms, type SmsStatus } from '../lib/sms/schemas.js'
import {
  createSender, type HttpClientOption, type SentSms, type SmsClient, type SmsMessage
} from '../lib/sms/client.js'
import { smsRoutes } from '../routes/sms.js'

export { SmsSendError, type SmsClient, type SmsMessage, type SentSms, type HttpClientOption } from '../lib/sms/client.js'
export type { InboundSms, SmsStatus, MessageStatus } from '../lib/sms/schemas.js'
export type { TwilioParams } from '../lib/sms/form.js'

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

export interface SmsGatewayOptions {
  /** Twilio auth token(s) that sign webhooks; several during a rotation (any one verifying is enough). The first
   * one also authenticates outbound sends. */
  authToken: string | string[]
  /** account SID (`AC...`) for outbound sends */
  accountSid?: string
  /** default sender of outbound sends: an E.164 number or a Messaging Service SID (`MG...`) */
  from?: string
  /** the externally visible base URL (`https://api.example.com`); webhook URLs are this plus the request path and
   * query, and outbound messages get `<publicUrl><statusPath>` as status callback */
  publicUrl?: string
  /** inbound message route; default `/webhooks/sms` */
  path?: string
  /** status callback route; default `/webhooks/sms/status` */
  statusPath?: string
  /** room that `sms.received` and `sms.status` are published to; default `sms` */
  room?: string
  /** publish to `room`; default true */
  publish?: boolean
  /** reply sent to every inbound message for which `on.received` returns nothing */
  autoReply?: string
  on?: SmsHandlers
  /** largest webhook body in bytes; default 64 KiB */
  bodyLimit?: number
  /** inbound webhook requests per minute per source IP; past it 429; default 600 */
  ratePerMin?: number
  /** a ready client for outbound sends (e.g. an existing `twilio(...)` client); twilio is then never loaded */
  client?: SmsClient
  /** a `twilio.RequestClient` for the REST client, or a factory `(twilio) => RequestClient` (keeps twilio lazy) */
  httpClient?: HttpClientOption
  /** decorate the instance with `app.sms`; default true */
  decorate?: boolean
}

const PLUGIN = 'fastify-gateways/sms'
const token = z.string().min(1, { error: 'must not be empty' })
const routePath = z.string().regex(/^\/[^\s?#]*$/, { error: 'must be a path starting with / (no query)' })

const SmsOptionsSchema = z.strictObject({
  authToken: z.union([token, z.array(token).min(1, { error: 'needs at least one token' })], {
    error: 'must be a Twilio auth token or a non-empty array of them'
  }).transform((v) => typeof v === 'string' ? [v] : v),
  accountSid: z.string().regex(ACCOUNT_SID, { error: 'must be AC followed by 32 hex digits' }).optional(),
  from: z.string().refine((v) => E164.test(v) || MESSAGING_SERVICE_SID.test(v), {
    error: 'must be an E.164 number (+15551234567) or a Messaging Service SID (MG...)'
  }).optional(),
  publicUrl: z.string().transform((v, ctx) => {
    try {
      return normalizePublicUrl(v)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof TypeError ? 'must be an http(s) URL such as https://api.example.com' : (err as Error).message })
      return z.NEVER
    }
  }).optional(),
  path: routePath.default('/webhooks/sms'),
  statusPath: routePath.default('/webhooks/sms/status'),
  room: z.string().refine(isRoomName, { error: `must be a room name (${ROOM_NAME_RULE})` }).default('sms'),
  publish: z.boolean().default(true),
  autoReply: z.string().min(1).max(1600).optional(),
  on: z.strictObject({
    received: z.custom<NonNullable<SmsHandlers['received']>>(isFunction, { error: 'must be a function' }).optional(),
    status: z.custom<NonNullable<SmsHandlers['status']>>(isFunction, { error: 'must be a function' }).optional()
  }).default({}),
  bodyLimit: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
  ratePerMin: z.number().int().min(1).max(1_000_000).default(600),
  client: z.custom<SmsClient>((v) => typeof (v as SmsClient | null)?.messages?.create === 'function', {
    error: 'must have messages.create (a twilio client)'
  }).optional(),
  httpClient: z.custom<HttpClientOption>((v) => typeof v === 'function' ||
    typeof (v as { request?: unknown } | null)?.request === 'function', {
    error: 'must be a twilio.RequestClient or a function (twilio) => RequestClient'
  }).optional(),
  decorate: z.boolean().default(true)
}).refine((o) => o.path !== o.statusPath, { error: 'must differ from path', path: ['statusPath'] })
  .refine((o) => !(o.client !== undefined && o.httpClient !== undefined), {
    error: 'httpClient applies to the client built from accountSid, not to a given client', path: ['httpClient']
  })

const isSmsError = (err: FastifyError) => typeof err.code === 'string' && err.code.startsWith('GW_SMS_')

async function smsGatewayPlugin (app: FastifyInstance, raw: SmsGatewayOptions) {
  const options = parseOptions(PLUGIN, SmsOptionsSchema, raw)
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

  const context = (request: FastifyRequest, params: TwilioParams, sid: string): SmsHandlerContext => ({
    rooms, log: request.log.child({ messageSid: sid }), params, sms, request
  })

  await app.register(async function smsScope (scope) {
    // Twilio posts forms; nothing else is parsed here (JSON, text: 415), and the host's parsers are untouched
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: options.bodyLimit },
      (_request, body, done) => { done(null, parseForm(body as string)) })
    // per source IP (request.ip: the client's address when Fastify trusts the proxy), on these routes only
    await scope.register(rateLimit, { max: options.ratePerMin, timeWindow: 60_000 })
    // our refusals keep Fastify's shape whatever the host's error handler does; other errors go to the host's
    scope.setErrorHandler((err: FastifyError, _request, reply) => {
      if (!isSmsError(err)) throw err
      const statusCode = err.statusCode ?? 500
      return reply.code(statusCode).send({ statusCode, code: err.code, error: STATUS[statusCode], message: err.message })
    })

    await smsRoutes(scope, {
      path: options.path,
      statusPath: options.statusPath,
      bodyLimit: options.bodyLimit,
      tokens: options.authToken,
      publicUrl: options.publicUrl,
      async received (message, params, request) {
        const reply = await on.received?.(message, context(request, params, message.sid))
        if (options.publish) {
          await rooms.publish(room, 'sms.received', { from: message.from, to: message.to, body: message.body, sid: message.sid })
        }
        if (reply === undefined || reply === null) return options.autoReply === undefined ? [] : [options.autoReply]
        return (typeof reply === 'string' ? [reply] : reply).filter((text) => typeof text === 'string' && text !== '')
      },
      async status (status, params, request) {
        await on.status?.(status, context(request, params, status.sid))
        if (options.publish) {
          const data: Record<string, unknown> = { sid: status.sid, status: status.status, to: status.to, from: status.from }
          if (status.errorCode !== undefined) data.errorCode = status.errorCode
          await rooms.publish(room, 'sms.status', data)
        }
      }
    })
  })
}

const STATUS: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 415: 'Unsupported Media Type', 500: 'Internal Server Error' }

/**
 * The sms gateway: Twilio's inbound message and status callback webhooks, verified against `X-Twilio-Signature`
 * with twilio's own validator (and the URL Twilio actually requested), published to the `sms` room and handed to
 * typed handlers; `app.sms.send` for outbound messages. Its form parser and rate limit stay inside its scope.
 */
export const smsGateway = fp(smsGatewayPlugin, { fastify: '5.x', name: PLUGIN })
export default smsGateway
