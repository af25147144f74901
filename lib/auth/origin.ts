/**
 * Browser Origin check for WebSocket upgrades and SSE CORS. No Origin header means a non-browser client, which is
 * not refused for it. With no allow-list only same-origin passes (Origin host equals the Host header);
 * `*` must be listed explicitly to allow every origin.
 */
export interface OriginPolicy {
  readonly any: boolean
  allowed (origin: string | undefined, host: string | undefined): boolean
  /** the value for Access-Control-Allow-Origin, or null to send none */
  corsValue (origin: string | undefined, host: string | undefined): string | null
}

export function createOriginPolicy (allowedOrigins: readonly string[] = []): OriginPolicy {
  const any = allowedOrigins.includes('*')
  const listed = new Set(allowedOrigins.filter((o) => o !== '*').map(normalise))
  const allowed = (origin: string | undefined, host: string | undefined): boolean => {
    if (origin === undefined) return true
    if (any) return true
    const normal = normalise(origin)
    if (listed.has(normal)) return true
    if (host === undefined) return false
    try {
      return new URL(normal).host === host.toLowerCase()
    } catch {
      return false
    }
  }
  return {
    any,
    allowed,
    corsValue: (origin, host) => {
      if (origin === undefined) return null
      if (any) return '*'
      return allowed(origin, host) ? origin : null
    }
  }
}

function normalise (origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '')
}
