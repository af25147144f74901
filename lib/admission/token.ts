/**
 * The credential of a request: `?token=` (browsers cannot set headers on a WebSocket or an EventSource) or an
 * `Authorization: Bearer` header. A repeated `?token=` counts once: the first one.
 */
export function extractToken (query: unknown, authorization: string | undefined): string | null {
  const fromQuery = typeof query === 'object' && query !== null ? (query as { token?: unknown }).token : undefined
  if (typeof fromQuery === 'string' && fromQuery.length > 0) return fromQuery
  if (Array.isArray(fromQuery) && typeof fromQuery[0] === 'string' && fromQuery[0].length > 0) return fromQuery[0]
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization)
    if (match !== null) return match[1]
  }
  return null
}
