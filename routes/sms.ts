import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import { GatewayErrors } from '../lib/errors.js'
import { formatIssues } from '../lib/options.js'
import { isForm } from '../lib/webhooks/form.js'
import type { WebhookPipeline } from '../lib/webhooks/pipeline.js'
import { webhookUrl } from '../lib/sms/url.js'
import { verifyTwilioSignature, type TwilioParams, type ValidateRequest } from '../lib/sms/signature.js'
import { messagingResponse, TWIML_CONTENT_TYPE } from '../lib/sms/twiml.js'
import { InboundSmsSchema, SmsStatusSchema, type InboundSms, type SmsStatus } from '../lib/sms/schemas.js'
import { redactUrl } from '../lib/log.js'
import { formBodies, settle, type WebhookRoute } from './webhooks.js'

export interface SmsRoutesOptions {
  path: string
  statusPath: string
  bodyLimit: number
  tokens: readonly string[]
  /** twilio's `validateRequest` */
  validate: ValidateRequest
  publicUrl?: string
  pipeline: WebhookPipeline
  /** a verified inbound message; resolves to the reply texts (none: an empty `<Response/>`) */
  received: (message: InboundSms, params: TwilioParams, request: FastifyRequest, signal: AbortSignal) => Promise<string[]>
  /** a verified status callback */
  status: (status: SmsStatus, params: TwilioParams, request: FastifyRequest, signal: AbortSignal) => Promise<void>
  /** publishes `sms.received` / `sms.status`, when the gateway publishes */
  publish?: (event: string, data: Record<string, unknown>) => Promise<void>
}

const PROBE = '\u0000fastify-gateways-trust-probe'

/**
 * Whether Fastify trusts this request's immediate peer as a proxy (its `trustProxy` setting applied to the socket
 * address). Fastify keeps that decision inside its `request.protocol` getter; we ask the getter itself, with a
 * probe `X-Forwarded-Proto` and this request's socket, so the answer is Fastify's for every form of `trustProxy`
 * (true, addresses, CIDRs, a function; a bare hop count never trusts the peer in Fastify 5).
 */
export function trustsPeer (request: FastifyRequest): boolean {
  const socket = request.raw.socket
  const probe = { headers: { 'x-forwarded-proto': PROBE }, raw: { socket }, socket }
  return (Reflect.get(request, 'protocol', probe) as unknown) === PROBE
}

function twiml (reply: FastifyReply, messages: string[] = []) {
  return reply.code(200).type(TWIML_CONTENT_TYPE).send(messagingResponse(messages))
}

interface Verified<T> {
  payload: T
  params: TwilioParams
  sid: string
  status: string
}

const route = <T>(kind: string): WebhookRoute<Verified<T>> => ({
  label: `Twilio ${kind}`,
  refused: 'sms webhook refused',
  about: (v) => ({ messageSid: v.sid, status: v.status }),
  errors: {
    handler: (v) => new GatewayErrors.SMS_HANDLER(`${v.sid} (${v.status})`),
    timeout: (v, budgetMs) => new GatewayErrors.SMS_TIMEOUT(`${v.sid} (${v.status})`, String(budgetMs)),
    inFlight: (v) => new GatewayErrors.SMS_IN_FLIGHT(`${v.sid} (${v.status})`),
    store: () => new GatewayErrors.STORE_UNAVAILABLE('the sms dedupe store failed')
  }
})
const INBOUND = route<InboundSms>('message')
const STATUS = route<SmsStatus>('status callback')

const refusal = <E extends Error>(err: E, reason: string, details: Record<string, unknown> = {}) => Object.assign(err, { reason, details })

/**
 * `POST <path>` (inbound messages) and `POST <statusPath>` (status callbacks), in the sms gateway's own scope, which
 * parses form bodies only. Each request's `X-Twilio-Signature` is checked against the URL Twilio requested (see
 * `webhookUrl`) under every configured token before anything else runs; then the shared webhook pipeline runs it
 * once per MessageSid and status (a redelivery, or a replay of a captured request, runs nothing: an inbound message
 * gets its first reply again).
 */
export async function smsRoutes (scope: FastifyInstance, options: SmsRoutesOptions) {
  const { pipeline } = options
  formBodies(scope, options.bodyLimit)

  /** The form Twilio signed, or throws GW_SMS_MEDIA_TYPE (415) / GW_SMS_BAD_SIGNATURE (403). */
  function signedForm (request: FastifyRequest): TwilioParams {
    if (!isForm(request.body)) throw refusal(new GatewayErrors.SMS_MEDIA_TYPE(), 'not a form')
    const header = request.headers['x-twilio-signature']
    const signature = typeof header === 'string' ? header : undefined
    if (signature === undefined || signature === '') {
      throw refusal(new GatewayErrors.SMS_BAD_SIGNATURE('missing X-Twilio-Signature'), 'no X-Twilio-Signature')
    }
    const url = webhookUrl({
      publicUrl: options.publicUrl,
      target: request.originalUrl,
      trusted: options.publicUrl === undefined && trustsPeer(request),
      headers: request.headers,
      encrypted: (request.raw.socket as { encrypted?: boolean } | null)?.encrypted === true
    })
    if (url === null || !verifyTwilioSignature(options.validate, options.tokens, signature, url, request.body)) {
      // the URL we checked against is what an operator needs to fix a proxy setup; never the signature or tokens
      throw refusal(new GatewayErrors.SMS_BAD_SIGNATURE('invalid X-Twilio-Signature'), 'X-Twilio-Signature does not match',
        { url: url === null ? null : redactUrl(url) })
    }
    return request.body
  }

  function parse<T> (params: TwilioParams, schema: z.ZodType<T>): T {
    const parsed = schema.safeParse(params)
    if (!parsed.success) throw new GatewayErrors.SMS_BAD_REQUEST(formatIssues(parsed.error.issues, { unknown: 'key' }))
    return parsed.data
  }

  scope.post(options.path, { bodyLimit: options.bodyLimit }, async (request, reply) => {
    const outcome = await pipeline.process((): Verified<InboundSms> => {
      const params = signedForm(request)
      const message = parse(params, InboundSmsSchema)
      return { payload: message, params, sid: message.sid, status: 'received' }
    }, (v) => ({
      key: `${v.sid}:received`,
      handle: async (signal) => JSON.stringify(await options.received(v.payload, v.params, request, signal)),
      publish: async () => {
        const { from, to, body, sid } = v.payload
        await options.publish?.('sms.received', { from, to, body, sid })
      }
    }))
    const settled = settle(request, reply, outcome, INBOUND)
    if (settled.kind === 'sent') return reply
    // a redelivery gets the reply the first delivery answered with
    return twiml(reply, settled.value === '' ? [] : JSON.parse(settled.value) as string[])
  })

  scope.post(options.statusPath, { bodyLimit: options.bodyLimit }, async (request, reply) => {
    const outcome = await pipeline.process((): Verified<SmsStatus> => {
      const params = signedForm(request)
      const status = parse(params, SmsStatusSchema)
      return { payload: status, params, sid: status.sid, status: status.status }
    }, (v) => ({
      key: `${v.sid}:${v.status}`,
      handle: async (signal) => { await options.status(v.payload, v.params, request, signal) },
      publish: async () => {
        const { sid, status, to, from, errorCode } = v.payload
        await options.publish?.('sms.status', errorCode === undefined ? { sid, status, to, from } : { sid, status, to, from, errorCode })
      }
    }))
    if (settle(request, reply, outcome, STATUS).kind === 'sent') return reply
    return twiml(reply)
  })
}
