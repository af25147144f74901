// Only twilio's webhook module: about 15 ms to load, where the whole package takes 100 to 500 ms and 29 MB.
import { validateRequest } from 'twilio/lib/webhooks/webhooks.js'
import type { TwilioParams } from './form.js'

/**
 * Whether `signature` (the `X-Twilio-Signature` header) is Twilio's HMAC-SHA1 of `url` and `params` under any of
 * `tokens` (several during an auth token rotation). Uses twilio's own validator, which also accepts the URL with
 * the scheme's default port added or any port removed. Never throws: a malformed URL is just not valid.
 */
export function verifyTwilioSignature (tokens: readonly string[], signature: string | undefined, url: string, params: TwilioParams): boolean {
  if (signature === undefined || signature === '') return false
  for (const token of tokens) {
    try {
      if (validateRequest(token, signature, url, params)) return true
    } catch {}
  }
  return false
}
