import { GatewayErrors } from '../errors.js'

/**
 * The browser Origin check of WebSocket upgrades, SSE streams and the ICE route (and the CORS value they answer with).
 * No Origin header means a non-browser client, which is not refused for it. With no allow-list only same-origin
 * passes: the Origin's scheme, host and port equal the request's own, as the server sees it (`https://evil.example`
 * is not `http://evil.example`, `https://app:8443` is not `https://app`). Behind a TLS-terminating proxy the request's
 * protocol is the forwarded one only when the server trusts the proxy; otherwise list the public origin.
 * `*` must be listed explicitly to allow every origin.
 */

/** Where a request arrived, as the server sees it (behind a trusted proxy: the forwarded protocol and host). */
export interface RequestOrigin {
  /** `http` or `https` */
  readonly protocol: string
  /** `host[:port]`; undefined when the request named none */
  readonly host: string | undefined
}

export interface OriginPolicy {
  /** `*` was listed: every origin passes */
  readonly any: boolean
  allowed (origin: string | undefined, self: RequestOrigin): boolean
  /** the value for Access-Control-Allow-Origin: `*`, the origin itself, or null to send none */
  corsValue (origin: string | undefined, self: RequestOrigin): string | null
}

export function createOriginPolicy (allowedOrigins: readonly string[] = []): OriginPolicy {
  const any = allowedOrigins.includes('*')
  const listed = new Set<string>()
  for (const entry of allowedOrigins) {
    if (entry === '*') continue
    const origin = serialiseOrigin(entry)
    if (origin === null) throw new GatewayErrors.INVALID_OPTIONS('allowedOrigins', `${JSON.stringify(entry)} is not an origin such as https://app.example.com`)
    listed.add(origin)
  }
  const allowed = (origin: string | undefined, self: RequestOrigin): boolean => {
    if (origin === undefined) return true
    if (any) return true
    const normal = serialiseOrigin(origin)
    if (normal === null) return false
    if (listed.has(normal)) return true
    if (self.host === undefined || self.host === '') return false
    return normal === serialiseOrigin(`${self.protocol}://${self.host}`)
  }
  return {
    any,
    allowed,
    corsValue: (origin, self) => {
      if (origin === undefined) return null
      if (any) return '*'
      return allowed(origin, self) ? origin : null
    }
  }
}

/** True for `*` and for an origin (`scheme://host[:port]`, a trailing `/` tolerated), the forms an allow-list takes. */
export function isOriginEntry (value: string): boolean {
  return value === '*' || serialiseOrigin(value) !== null
}

/**
 * The ASCII serialisation of an origin (`https://app.example.com`, default port dropped, host lowercased), or null
 * when `value` is not one: no path beyond `/`, no query, fragment or credentials. Browsers send `null` for opaque
 * origins (sandboxed frames, `file:`): never an origin here.
 */
export function serialiseOrigin (value: string): string | null {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return null
  }
  if (url.host === '' || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return null
  if (url.pathname !== '/' && url.pathname !== '') return null
  // special schemes (http, https, ws, wss) have a tuple origin; others (an extension's scheme) keep scheme://host
  return url.origin !== 'null' ? url.origin : `${url.protocol}//${url.host}`
}
