import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Standard Webhooks (https://www.standardwebhooks.com) verification, framework-free. The signed content is
 * `${webhook-id}.${webhook-timestamp}.${body}` (the body's exact bytes), HMAC-SHA256 keyed by the base64-decoded
 * secret (`whsec_` prefix optional); `webhook-signature` holds one or more space-separated `v1,<base64>` entries
 * (other versions are ignored); the timestamp must be within the tolerance of now, in either direction.
 * Interoperates with the `standardwebhooks` and `svix` packages' signers.
 */
export const SECRET_PATTERN = /^(whsec_)?[A-Za-z0-9+/]+={0,2}$/
export const DEFAULT_TOLERANCE_S = 300
/** longest `webhook-id` accepted; it becomes a dedupe key */
export const MAX_WEBHOOK_ID = 256

export interface WebhookHeaders {
  id: string | undefined
  timestamp: string | undefined
  signature: string | undefined
}

export type VerifyFailure = 'missing-headers' | 'bad-timestamp' | 'stale' | 'future' | 'bad-signature'

export type VerifyResult =
  | { ok: true, id: string, timestamp: number }
  | { ok: false, reason: VerifyFailure, message: string }

export interface VerifierOptions {
  /** seconds a timestamp may be off from now, either way; default 300 */
  toleranceS?: number
  /** the clock, ms since the epoch; default Date.now */
  now?: () => number
}

/** The key bytes of a `whsec_...` (or bare base64) secret. */
export function decodeSecret (secret: string): Buffer {
  if (!SECRET_PATTERN.test(secret)) throw new Error('a webhook secret must be whsec_ followed by base64')
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64')
  if (key.length === 0) throw new Error('a webhook secret must not be empty')
  return key
}

function hmac (key: Buffer, id: string, timestamp: string, body: Buffer): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`, 'utf8').update(body).digest('base64')
}

/** A `webhook-signature` value (`v1,<base64>`) for a message, as a sender computes it. */
export function signWebhook (secret: string, id: string, timestampS: number, body: Buffer | string): string {
  return `v1,${hmac(decodeSecret(secret), id, String(timestampS), typeof body === 'string' ? Buffer.from(body) : body)}`
}

/** Verifies requests of one sender against all of its current secrets (several during a rotation). */
export class WebhookVerifier {
  private readonly keys: Buffer[]
  private readonly toleranceS: number
  private readonly now: () => number

  constructor (secrets: readonly string[], options: VerifierOptions = {}) {
    if (secrets.length === 0) throw new Error('at least one webhook secret is needed')
    this.keys = secrets.map(decodeSecret)
    this.toleranceS = options.toleranceS ?? DEFAULT_TOLERANCE_S
    this.now = options.now ?? Date.now
  }

  verify (headers: WebhookHeaders, body: Buffer): VerifyResult {
    const { id, timestamp, signature } = headers
    if (id === undefined || id === '' || timestamp === undefined || signature === undefined || signature === '') {
      return { ok: false, reason: 'missing-headers', message: 'missing webhook-id, webhook-timestamp or webhook-signature header' }
    }
    if (id.length > MAX_WEBHOOK_ID) {
      return { ok: false, reason: 'missing-headers', message: `webhook-id is longer than ${MAX_WEBHOOK_ID} characters` }
    }
    if (!/^\d{1,15}$/.test(timestamp)) {
      return { ok: false, reason: 'bad-timestamp', message: 'webhook-timestamp must be whole seconds since the Unix epoch' }
    }
    const seconds = Number(timestamp)
    const nowS = Math.floor(this.now() / 1000)
    if (nowS - seconds > this.toleranceS) {
      return { ok: false, reason: 'stale', message: `webhook-timestamp is more than ${this.toleranceS} s old` }
    }
    if (seconds - nowS > this.toleranceS) {
      return { ok: false, reason: 'future', message: `webhook-timestamp is more than ${this.toleranceS} s in the future` }
    }
    const offered: Buffer[] = []
    for (const entry of signature.split(' ')) {
      const comma = entry.indexOf(',')
      if (comma > 0 && entry.slice(0, comma) === 'v1') offered.push(Buffer.from(entry.slice(comma + 1)))
    }
    let matched = false
    for (const key of this.keys) {
      const expected = Buffer.from(hmac(key, id, timestamp, body))
      for (const candidate of offered) {
        if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) matched = true
      }
    }
    if (!matched) return { ok: false, reason: 'bad-signature', message: 'no webhook-signature matches a secret of this source' }
    return { ok: true, id, timestamp: seconds }
  }
}
