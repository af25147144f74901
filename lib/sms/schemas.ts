import { z } from 'zod'

/** An E.164 phone number: `+`, a country code not starting with 0, at most 15 digits in all. */
export const E164 = /^\+[1-9]\d{1,14}$/
export const isE164 = (value: unknown): value is string => typeof value === 'string' && E164.test(value)
/** A Messaging Service SID, usable instead of a `from` number. */
export const MESSAGING_SERVICE_SID = /^MG[0-9a-fA-F]{32}$/
export const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/

const text = z.string()
const optionalText = z.string().optional()
const count = z.coerce.number().int().min(0)

/**
 * Twilio names the message id `MessageSid` and the status `MessageStatus`; older webhooks send `SmsSid` and
 * `SmsStatus` (newer ones send both, equal). An empty `ErrorCode` means none.
 */
function legacyNames (value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value
  const params = value as Record<string, unknown>
  const out: Record<string, unknown> = { ...params }
  out.MessageSid ??= params.SmsSid ?? params.SmsMessageSid
  out.MessageStatus ??= params.SmsStatus
  if (out.ErrorCode === '') delete out.ErrorCode
  return out
}

/**
 * The form fields of an inbound message webhook, as Twilio names them (docs: "Twilio's request to your
 * application"). Fields not listed here stay available in the handler context's `params`.
 */
export const InboundSmsFields = z.looseObject({
  MessageSid: text.min(1),
  AccountSid: optionalText,
  MessagingServiceSid: optionalText,
  From: text.min(1),
  To: text.min(1),
  Body: text.default(''),
  NumMedia: count.default(0),
  NumSegments: count.optional(),
  FromCity: optionalText,
  FromState: optionalText,
  FromZip: optionalText,
  FromCountry: optionalText,
  ToCity: optionalText,
  ToState: optionalText,
  ToZip: optionalText,
  ToCountry: optionalText,
  OptOutType: optionalText,
  ApiVersion: optionalText
})

/** An inbound SMS/MMS as a handler sees it: Twilio's fields in camelCase, media as a list. */
export interface InboundSms {
  sid: string
  accountSid?: string
  messagingServiceSid?: string
  from: string
  to: string
  body: string
  numMedia: number
  numSegments?: number
  media: Array<{ url: string, contentType?: string }>
  fromCity?: string
  fromState?: string
  fromZip?: string
  fromCountry?: string
  toCity?: string
  toState?: string
  toZip?: string
  toCountry?: string
  /** `STOP`, `START` or `HELP` when the message was an opt-out keyword (Advanced Opt-Out) */
  optOutType?: string
  apiVersion?: string
}

export const InboundSmsSchema = z.preprocess(legacyNames, InboundSmsFields).transform((f): InboundSms => {
  const media: InboundSms['media'] = []
  for (let i = 0; i < Math.min(f.NumMedia, 10); i++) {
    const url = f[`MediaUrl${i}`]
    if (typeof url !== 'string') continue
    const contentType = f[`MediaContentType${i}`]
    media.push(typeof contentType === 'string' ? { url, contentType } : { url })
  }
  return dropUndefined({
    sid: f.MessageSid,
    accountSid: f.AccountSid,
    messagingServiceSid: f.MessagingServiceSid,
    from: f.From,
    to: f.To,
    body: f.Body,
    numMedia: f.NumMedia,
    numSegments: f.NumSegments,
    media,
    fromCity: f.FromCity,
    fromState: f.FromState,
    fromZip: f.FromZip,
    fromCountry: f.FromCountry,
    toCity: f.ToCity,
    toState: f.ToState,
    toZip: f.ToZip,
    toCountry: f.ToCountry,
    optOutType: f.OptOutType,
    apiVersion: f.ApiVersion
  })
})

/** Message statuses Twilio reports (new ones may appear: any string is accepted). */
export type MessageStatus = 'accepted' | 'scheduled' | 'canceled' | 'queued' | 'sending' | 'sent' | 'failed' |
  'delivered' | 'undelivered' | 'receiving' | 'received' | 'read' | 'partially_delivered' | (string & {})

/** The form fields of a message status callback. */
export const StatusCallbackFields = z.looseObject({
  MessageSid: text.min(1),
  MessageStatus: text.min(1),
  AccountSid: optionalText,
  MessagingServiceSid: optionalText,
  To: text.min(1),
  From: optionalText,
  ErrorCode: z.coerce.number().int().optional(),
  ErrorMessage: optionalText,
  RawDlrDoneDate: optionalText,
  ApiVersion: optionalText
})

/** A status callback as a handler sees it. */
export interface SmsStatus {
  sid: string
  status: MessageStatus
  to: string
  /** absent from some callbacks of Messaging Service messages sent before a sender was chosen */
  from: string | null
  /** Twilio's error code (30003 unreachable, 30007 filtered, ...) for failed and undelivered messages */
  errorCode?: number
  errorMessage?: string
  accountSid?: string
  messagingServiceSid?: string
  rawDlrDoneDate?: string
  apiVersion?: string
}

export const SmsStatusSchema = z.preprocess(legacyNames, StatusCallbackFields).transform((f): SmsStatus => dropUndefined({
  sid: f.MessageSid,
  status: f.MessageStatus,
  to: f.To,
  from: f.From ?? null,
  errorCode: f.ErrorCode,
  errorMessage: f.ErrorMessage,
  accountSid: f.AccountSid,
  messagingServiceSid: f.MessagingServiceSid,
  rawDlrDoneDate: f.RawDlrDoneDate,
  apiVersion: f.ApiVersion
}))

function dropUndefined<T extends object> (value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) {
    if (value[key] === undefined) delete value[key]
  }
  return value
}
