import type { FormFields } from '../webhooks/form.js'

/** Twilio's webhook parameters as signed: every form field, a repeated name as an array of its values. */
export type TwilioParams = FormFields

/** twilio's own `validateRequest` (from `twilio/lib/webhooks/webhooks.js`, loaded by the gateway). */
export type ValidateRequest = (authToken: string, signature: string, url: string, params: Record<string, unknown>) => boolean

/**
 * Whether `signature` (the `X-Twilio-Signature` header) is Twilio's HMAC-SHA1 of `url` and `params` under any of
 * `tokens` (several during an auth token rotation), checked with twilio's own validator, which also accepts the URL
 * with the scheme's default port added or any port removed. Never throws: a malformed URL is just not valid.
 */
export function verifyTwilioSignature (validate: ValidateRequest, tokens: readonly string[], signature: string | undefined,
  url: string, params: TwilioParams): boolean {
  if (signature === undefined || signature === '') return false
  for (const token of tokens) {
    try {
      if (validate(token, signature, url, params)) return true
    } catch {}
  }
  return false
}
