import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { GatewayErrors } from '../lib/errors.js'
import type { TwilioParams } from '../lib/sms/form.js'
import { webhookUrl } from '../lib/sms/url.js'
import { verifyTwilioSignature } from '../lib/sms/signature.js'
import { messagingResponse, TWIML_CONTENT_TYPE } from '../lib/sms/twiml.js'
import { describeIssues, InboundSmsSchema, SmsStatusSchema, type InboundSms, type SmsStatus } from '../lib/sms/schemas.js'
import { redactUrl } from '../lib/log.js'

export interface SmsRoutesOptions {
  path: string
  statusPath: string
  bodyLimit: number
  tokens: readonly string[]
  publicUrl?: string
  /** a verified inbound message; resolves to the reply texts (none: an empty `<Response/>`) */
  received: (message: InboundSms, params: TwilioParams, request: FastifyRequest) => Promise<string[]>
  /** a verified status callback */
  status: (status: SmsStatus, params: TwilioParams, request: FastifyRequest) => Promise<void>
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

const isForm = (body: unknown): body is TwilioParams =>
  typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === null

function twiml (reply: FastifyReply, messages: string[] = []) {
  return reply.code(200).type(TWIML_CONTENT_TYPE).send(messagingResponse(messages))
}

/**
 * `POST <path>` (inbound messages) and `POST <statusPath>` (status callbacks). Registered in the sms gateway's own
 * scope, which parses form bodies only. Each request's `X-Twilio-Signature` is checked against the URL Twilio
 * requested (see `webhookUrl`) under every configured token before anything else runs.
 */
export async function smsRoutes (scope: FastifyInstance, options: SmsRoutesOptions) {
  const verify = async (request: FastifyRequest) => {
    if (!isForm(request.body)) throw new GatewayErrors.SMS_MEDIA_TYPE()
    const header = request.headers['x-twilio-signature']
    const signature = typeof header === 'string' ? header : undefined
    if (signature === undefined || signature === '') {
      request.log.warn('sms webhook refused: no X-Twilio-Signature')
      throw new GatewayErrors.SMS_BAD_SIGNATURE('missing X-Twilio-Signature')
    }
    const url = webhookUrl({
      publicUrl: options.publicUrl,
      target: request.originalUrl,
      trusted: options.publicUrl === undefined && trustsPeer(request),
      headers: request.headers,
      encrypted: (request.raw.socket as { encrypted?: boolean } | null)?.encrypted === true
    })
    if (url === null || !verifyTwilioSignature(options.tokens, signature, url, request.body)) {
      // the URL we checked against is what an operator needs to fix a proxy setup; never the signature or tokens
      request.log.warn({ url: url === null ? null : redactUrl(url) }, 'sms webhook refused: X-Twilio-Signature does not match')
      throw new GatewayErrors.SMS_BAD_SIGNATURE('invalid X-Twilio-Signature')
    }
  }

  scope.post(options.path, { bodyLimit: options.bodyLimit, preHandler: verify }, async (request, reply) => {
    const params = request.body as TwilioParams
    const parsed = InboundSmsSchema.safeParse(params)
    if (!parsed.success) throw new GatewayErrors.SMS_BAD_REQUEST(describeIssues(parsed.error))
    const replies = await options.received(parsed.data, params, request)
    return twiml(reply, replies)
  })

  scope.post(options.statusPath, { bodyLimit: options.bodyLimit, preHandler: verify }, async (request, reply) => {
    const params = request.body as TwilioParams
    const parsed = SmsStatusSchema.safeParse(params)
    if (!parsed.success) throw new GatewayErrors.SMS_BAD_REQUEST(describeIssues(parsed.error))
    await options.status(parsed.data, params, request)
    return twiml(reply)
  })
}
