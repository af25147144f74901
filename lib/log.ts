/**
 * Logger settings shared by server.ts and recommended to host apps: headers that carry secrets are censored, and
 * request URLs are logged with credentials in the query string (`?token=`) replaced.
 */
export const SECRET_HEADERS = [
  'authorization', 'cookie', 'stripe-signature', 'x-twilio-signature', 'webhook-signature', 'x-api-key', 'sec-websocket-protocol'
] as const

const SECRET_QUERY = /([?&](?:token|access_token|api_key|key)=)[^&#]*/gi

export function redactUrl (url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]')
}

interface RequestLike {
  method?: string
  url?: string
  host?: string
  hostname?: string
  ip?: string
  socket?: { remotePort?: number }
}

export function loggerOptions (level: string) {
  return {
    level,
    redact: {
      paths: SECRET_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `headers["${h}"]`]),
      censor: '[redacted]'
    },
    serializers: {
      req (req: RequestLike) {
        return {
          method: req.method,
          url: req.url === undefined ? undefined : redactUrl(req.url),
          host: req.host ?? req.hostname,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort
        }
      }
    }
  }
}
