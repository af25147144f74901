/**
 * The URL Twilio requested, which is what it signed. Behind a proxy the request we see is not that URL: the scheme,
 * host and port have to be rebuilt, and each mistake means a legitimate webhook is refused.
 */
export interface WebhookUrlInput {
  /** the externally visible base URL (`PUBLIC_URL`), without a trailing slash; wins over everything else */
  publicUrl?: string
  /** the request target as received: path and raw query string (`request.originalUrl`) */
  target: string
  /** whether the immediate peer is a proxy we trust, so its `X-Forwarded-*` headers count */
  trusted: boolean
  headers: Record<string, string | string[] | undefined>
  /** whether the connection itself is TLS */
  encrypted: boolean
}

// a host name, IPv4 or bracketed IPv6 address, with an optional port
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::\d{1,5})?$/
const HAS_PORT = /:\d{1,5}$/

/**
 * The first entry of a header that proxies append to (`X-Forwarded-Proto: https, http`): the value the first proxy,
 * the one Twilio talked to, saw. Fastify's own `request.protocol`/`request.host` take the last entry, the hop
 * nearest to us, which is right for "who connected to me" and wrong for "which URL did Twilio sign".
 */
export function firstEntry (value: string | string[] | undefined): string | undefined {
  const joined = Array.isArray(value) ? value[0] : value
  if (joined === undefined) return undefined
  const comma = joined.indexOf(',')
  const first = (comma === -1 ? joined : joined.slice(0, comma)).trim()
  return first === '' ? undefined : first
}

/** Removes the origin from an absolute-form request target (`POST http://host/path`), which proxies may send. */
function pathAndQuery (target: string): string {
  if (target.startsWith('/')) return target
  try {
    const url = new URL(target)
    return url.pathname + url.search
  } catch {
    return `/${target}`
  }
}

/**
 * Rebuilds the URL Twilio signed, or null when the request does not carry enough to build one (no or a malformed
 * Host, an unknown scheme). Order: `publicUrl` + target; else, from a trusted proxy, the first entries of
 * `X-Forwarded-Proto` and `X-Forwarded-Host` (plus `X-Forwarded-Port` when the host has no port and it is not the
 * scheme's default); else the `Host` header and the connection's own scheme. A non-default port is kept: Twilio's
 * validator tries the URL without any port and with `:443`/`:80`, never with a port we dropped.
 */
export function webhookUrl (input: WebhookUrlInput): string | null {
  const target = pathAndQuery(input.target)
  if (input.publicUrl !== undefined) return input.publicUrl + target
  const { headers } = input
  let proto = input.encrypted ? 'https' : 'http'
  let host = firstEntry(headers.host)
  if (input.trusted) {
    const forwardedProto = firstEntry(headers['x-forwarded-proto'])
    if (forwardedProto !== undefined) proto = forwardedProto.toLowerCase()
    const forwardedHost = firstEntry(headers['x-forwarded-host'])
    if (forwardedHost !== undefined) host = forwardedHost
    const forwardedPort = firstEntry(headers['x-forwarded-port'])
    if (host !== undefined && forwardedPort !== undefined && /^\d{1,5}$/.test(forwardedPort) &&
        !HAS_PORT.test(host) && forwardedPort !== (proto === 'https' ? '443' : '80')) {
      host = `${host}:${forwardedPort}`
    }
  }
  if (proto !== 'http' && proto !== 'https') return null
  if (host === undefined || !HOST.test(host)) return null
  return `${proto}://${host}${target}`
}
