/**
 * Logger settings shared by server.ts and recommended to host apps: headers that carry secrets are censored, and
 * credentials in query strings (`?token=`, `?api_key=`...) are replaced wherever a URL is logged: the request
 * serializer's `url`, a top-level `url` field, and URLs inside message strings (Fastify's "Route GET:/x?token=..
 * not found"). Parameter names are compared as the query parser sees them: percent-decoded (`tok%65n` is `token`),
 * `+` as a space, in any case, every repetition (docs/security.md).
 */
export const SECRET_HEADERS = [
  'authorization', 'cookie', 'stripe-signature', 'x-twilio-signature', 'webhook-signature', 'x-api-key', 'sec-websocket-protocol'
] as const

/** Query parameters whose value is a credential, lower case, after decoding. */
export const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set([
  'token', 'access_token', 'id_token', 'refresh_token', 'jwt', 'auth', 'api_key', 'apikey', 'key', 'secret',
  'password', 'passwd', 'store_passwd', 'signature', 'sig'
])

const REDACTED = '[redacted]'

/** A parameter name as a query parser reads it; repeated decoding also unwraps `%2565` (defence in depth). */
function decodeName (raw: string): string {
  let name = raw.replace(/\+/g, ' ')
  for (let i = 0; i < 3 && name.includes('%'); i++) {
    const decoded = name.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    if (decoded === name) break
    name = decoded
  }
  return name.trim().toLowerCase()
}

/** `query` (without its `?`) with the value of every credential parameter replaced. */
function redactQuery (query: string): string {
  let changed = false
  const parts = query.split('&')
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    if (SECRET_QUERY_PARAMS.has(decodeName(name))) {
      parts[i] = `${name}=${REDACTED}`
      changed = true
    }
  }
  return changed ? parts.join('&') : query
}

/** `url` with the values of credential query parameters replaced by `[redacted]`. */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const hash = url.indexOf('#', start)
  const end = hash === -1 ? url.length : hash
  return url.slice(0, start + 1) + redactQuery(url.slice(start + 1, end)) + url.slice(end)
}

/** Every `?query` inside free text (a log message) redacted; the query runs to whitespace, a quote or `#`. */
export function redactText (text: string): string {
  if (!text.includes('?')) return text
  return text.replace(/\?([^\s"'#<>]*)/g, (_m, query: string) => `?${redactQuery(query)}`)
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
      censor: REDACTED
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
      },
      url: (url: unknown) => typeof url === 'string' ? redactUrl(url) : url
    },
    hooks: {
      /** message strings (Fastify's own 404 line carries the raw URL) */
      logMethod (this: unknown, args: unknown[], method: (...args: unknown[]) => void) {
        for (let i = 0; i < args.length; i++) {
          const arg = args[i]
          if (typeof arg === 'string') args[i] = redactText(arg)
        }
        method.apply(this, args)
      }
    }
  }
}
