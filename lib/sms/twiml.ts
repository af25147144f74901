// Characters XML 1.0 cannot carry at all (escaping does not help): C0 controls but tab, LF and CR; lone surrogates;
// U+FFFE and U+FFFF. They are dropped so a reply built from user text is always a well-formed document.
// eslint-disable-next-line no-control-regex
const INVALID_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' }

/** Text safe as XML character data or an attribute value. */
export function escapeXml (text: string): string {
  return text.replace(INVALID_XML, '').replace(/[&<>"']/g, (c) => ESCAPES[c])
}

export const TWIML_CONTENT_TYPE = 'text/xml; charset=utf-8'

/**
 * A messaging TwiML document: `<Response/>` (no reply) or one `<Message>` per text, each escaped. This is what an
 * inbound SMS webhook answers; Twilio sends each `<Message>` back to the sender.
 */
export function messagingResponse (messages: readonly string[] = []): string {
  const head = '<?xml version="1.0" encoding="UTF-8"?>'
  if (messages.length === 0) return `${head}<Response/>`
  return `${head}<Response>${messages.map((m) => `<Message>${escapeXml(m)}</Message>`).join('')}</Response>`
}
