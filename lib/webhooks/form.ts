/**
 * The fields of an `application/x-www-form-urlencoded` body, decoded; a name sent more than once keeps all its
 * values as an array, in order (Twilio signs each of them).
 */
export type FormFields = Record<string, string | string[]>

/** Parses a form body. The result has no prototype (`__proto__` is just a name). */
export function parseForm (text: string): FormFields {
  const out: FormFields = Object.create(null)
  for (const [name, value] of new URLSearchParams(text)) {
    const seen = out[name]
    if (seen === undefined) out[name] = value
    else if (typeof seen === 'string') out[name] = [seen, value]
    else seen.push(value)
  }
  return out
}

/** Whether `body` is what `parseForm` makes (the form parser ran: the request was url-encoded). */
export const isForm = (body: unknown): body is FormFields =>
  typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === null
