/** The credential of a request: `?token=` (browsers cannot set headers on WebSocket or EventSource) or a Bearer header. */
export function extractToken (query: unknown, authorization: string | undefined): string | null {
  const fromQuery = (query as Record<string, unknown> | undefined)?.token
  if (typeof fromQuery === 'string' && fromQuery.length > 0) return fromQuery
  if (Array.isArray(fromQuery) && typeof fromQuery[0] === 'string') return fromQuery[0]
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization)
    if (match !== null) return match[1]
  }
  return null
}
