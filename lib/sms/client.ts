import type Twilio from 'twilio'
import { GatewayErrors } from '../errors.js'
import { loadPeer } from '../peer.js'
import { E164, MESSAGING_SERVICE_SID } from './schemas.js'

/** The parameters of Twilio's "create a Message" call this gateway sets. */
export interface CreateMessageParams {
  to: string
  body: string
  from?: string
  messagingServiceSid?: string
  statusCallback?: string
}

/** The part of a Twilio REST client `send` uses; a real `twilio(...)` client is one. */
export interface SmsClient {
  messages: {
    create (params: CreateMessageParams): Promise<{ sid: string, status: string, to: string, from: string | null }>
  }
}

/** twilio's default export: `twilio(accountSid, authToken, opts)`, with `RequestClient` and friends on it. */
export type TwilioModule = typeof Twilio
/** A `twilio.RequestClient` (or a subclass: a proxy, a base URL rewrite in tests), or a factory given the module. */
export type HttpClientOption = Twilio.RequestClient | ((twilio: TwilioModule) => Twilio.RequestClient)

export interface SmsMessage {
  /** E.164 number of the recipient, e.g. `+15551234567` */
  to: string
  /** the text; at most 1600 characters */
  body: string
  /** E.164 sender number or Messaging Service SID (`MG...`); default: the gateway's `from` */
  from?: string
}

export interface SentSms {
  sid: string
  /** Twilio's status at creation, usually `queued` or `accepted`; later ones arrive as status callbacks */
  status: string
  to: string
  from: string | null
}

/**
 * Twilio refused the message or could not be reached. `code`, `status` and `moreInfo` are Twilio's own (as on its
 * `RestException`: `code` 21211 is an invalid `To`, 21610 an unsubscribed recipient, ...). `statusCode` is 502 so
 * that, escaping a route, it answers Bad Gateway rather than echoing Twilio's status as the host app's own.
 * It never carries the auth token or the request Twilio's client made.
 */
export class SmsSendError extends Error {
  override readonly name = 'SmsSendError'
  /** Twilio's error code, when Twilio answered with one */
  readonly code?: number
  /** the HTTP status Twilio answered with; absent when it could not be reached */
  readonly status?: number
  /** Twilio's link to the documentation of `code` */
  readonly moreInfo?: string
  readonly statusCode = 502

  constructor (message: string, fields: { code?: number, status?: number, moreInfo?: string } = {}) {
    super(message)
    if (fields.code !== undefined) this.code = fields.code
    if (fields.status !== undefined) this.status = fields.status
    if (fields.moreInfo !== undefined) this.moreInfo = fields.moreInfo
  }

  /** From whatever twilio's client threw: a `RestException` (Twilio answered) or a transport error. */
  static from (err: unknown): SmsSendError {
    const e = (err ?? {}) as { status?: unknown, code?: unknown, moreInfo?: unknown, message?: unknown }
    if (typeof e.status === 'number') {
      return new SmsSendError(`Twilio refused the message: ${String(e.message ?? 'no message')}`, {
        status: e.status,
        code: typeof e.code === 'number' ? e.code : undefined,
        moreInfo: typeof e.moreInfo === 'string' ? e.moreInfo : undefined
      })
    }
    // an axios error carries its request config, auth included: only its code or message is kept
    const reason = typeof e.code === 'string' ? e.code : typeof e.message === 'string' ? e.message : 'unknown error'
    return new SmsSendError(`could not reach Twilio: ${reason}`)
  }
}

export interface SenderOptions {
  accountSid?: string
  /** the auth token the REST client authenticates with (the first configured one) */
  authToken: string
  /** default sender: E.164 number or Messaging Service SID */
  from?: string
  /** status callback URL set on every message, when known */
  statusCallback?: string
  /** a ready client: used as is, twilio is then never loaded */
  client?: SmsClient
  httpClient?: HttpClientOption
  /** loads twilio; default the optional peer dependency, imported on the first send */
  loadTwilio?: () => Promise<TwilioModule>
}

const MAX_BODY = 1600

/** The whole twilio package (29 MB, 100 to 500 ms to import): only the first send loads it. */
async function importTwilio (): Promise<TwilioModule> {
  return (await loadPeer<{ default: TwilioModule }>('twilio', 'sms', () => import('twilio'))).default
}

/**
 * `send(message)`: validates it, then creates the message through Twilio's REST API. The REST client is built on
 * the first call (loading the twilio package then) and reused. Invalid input throws GW_SMS_INVALID (400) before
 * any request; Twilio's own refusals and transport errors throw `SmsSendError`.
 */
export function createSender (options: SenderOptions): (message: SmsMessage) => Promise<SentSms> {
  let client: Promise<SmsClient> | undefined = options.client === undefined ? undefined : Promise.resolve(options.client)
  const load = options.loadTwilio ?? importTwilio

  function getClient (accountSid: string): Promise<SmsClient> {
    client ??= load().then((twilio) => {
      const httpClient = typeof options.httpClient === 'function' ? options.httpClient(twilio) : options.httpClient
      return twilio(accountSid, options.authToken, httpClient === undefined ? {} : { httpClient }) as unknown as SmsClient
    })
    client.catch(() => { client = undefined })
    return client
  }

  return async function send (message: SmsMessage): Promise<SentSms> {
    const { to, body } = message ?? {} as SmsMessage
    if (typeof to !== 'string' || !E164.test(to)) {
      throw new GatewayErrors.SMS_INVALID(`to must be an E.164 number such as +15551234567, got ${JSON.stringify(to)}`)
    }
    if (typeof body !== 'string' || body.length === 0 || body.length > MAX_BODY) {
      throw new GatewayErrors.SMS_INVALID(`body must be a string of 1 to ${MAX_BODY} characters`)
    }
    const from = message.from ?? options.from
    if (from === undefined) throw new GatewayErrors.SMS_NOT_CONFIGURED('no sender: set from (TWILIO_FROM) or pass one')
    const isService = MESSAGING_SERVICE_SID.test(from)
    if (!isService && !E164.test(from)) {
      throw new GatewayErrors.SMS_INVALID(`from must be an E.164 number or a Messaging Service SID (MG...), got ${JSON.stringify(from)}`)
    }
    if (options.client === undefined && options.accountSid === undefined) {
      throw new GatewayErrors.SMS_NOT_CONFIGURED('no account: set accountSid (TWILIO_ACCOUNT_SID)')
    }
    const params: CreateMessageParams = isService ? { to, body, messagingServiceSid: from } : { to, body, from }
    if (options.statusCallback !== undefined) params.statusCallback = options.statusCallback
    const api = await getClient(options.accountSid ?? '')
    let created: Awaited<ReturnType<SmsClient['messages']['create']>>
    try {
      created = await api.messages.create(params)
    } catch (err) {
      throw SmsSendError.from(err)
    }
    return { sid: created.sid, status: created.status, to: created.to, from: created.from ?? null }
  }
}
