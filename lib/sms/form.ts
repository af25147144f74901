/**
 * Twilio's webhook parameters as signed: every form field, decoded; a name sent more than once keeps all its
 * values as an array (Twilio's signature covers each of them, sorted).
 */
export type TwilioParams = Record<string, string | string[]>

/** Parses an `application/x-www-form-urlencoded` body. The result has no prototype (`__proto__` is just a name). */
export function parseForm (text: string): TwilioParams {
  const out: TwilioParams = Object.create(null)
  for (const [name, value] of new URLSearchParams(text)) {
    const seen = out[name]
    if (seen === undefined) out[name] = value
    else if (typeof seen === 'string') out[name] = [seen, value]
    else seen.push(value)
  }
  return out
}
