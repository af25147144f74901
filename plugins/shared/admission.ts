import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayErrors } from '../../lib/errors.js'
import { extractToken } from '../../lib/admission/token.js'
import type { Admission, Door, Refusal } from '../../lib/admission/admission.js'
import type { RequestOrigin } from '../../lib/admission/origin.js'
import type { GatewayUser } from '../../lib/auth/user.js'

/**
 * The Fastify side of the admission check (lib/admission): a request becomes a `Door`, a refusal becomes the
 * transport's HTTP error. Used by the ws and rtc upgrades (in `onRequest`, before the upgrade), SSE streams (before
 * the stream starts) and the ICE route.
 */

export type Transport = 'ws' | 'sse' | 'rtc'

const REFUSALS = {
  ws: { origin: GatewayErrors.WS_ORIGIN_FORBIDDEN, capacity: GatewayErrors.WS_TOO_MANY_CONNECTIONS, unauthenticated: GatewayErrors.WS_UNAUTHENTICATED },
  sse: { origin: GatewayErrors.SSE_ORIGIN_FORBIDDEN, capacity: GatewayErrors.SSE_TOO_MANY_CONNECTIONS, unauthenticated: GatewayErrors.SSE_UNAUTHENTICATED },
  rtc: { origin: GatewayErrors.RTC_ORIGIN_FORBIDDEN, capacity: GatewayErrors.RTC_TOO_MANY_CONNECTIONS, unauthenticated: GatewayErrors.RTC_UNAUTHENTICATED }
} as const

/** The client's address, for the per-address limit (`request.ip` honours `trustProxy`). */
export function addressOf (request: FastifyRequest): string {
  return request.ip ?? request.socket?.remoteAddress ?? 'unknown'
}

/** The request's own scheme and host as Fastify sees them (the forwarded ones behind a trusted proxy). */
export function requestOrigin (request: FastifyRequest): RequestOrigin {
  const host = request.host
  return { protocol: request.protocol, host: typeof host === 'string' && host !== '' ? host : undefined }
}

/** What the admission check reads from a request: Origin, the request's own protocol and host, address, token. */
export function doorOf (request: FastifyRequest): Door<FastifyRequest> {
  return {
    origin: request.headers.origin,
    self: requestOrigin(request),
    address: addressOf(request),
    token: extractToken(request.query, request.headers.authorization),
    request
  }
}

/** The transport's error for a refusal (403 origin, 429 connections, 401 credential). */
export function refusalError (transport: Transport, refusal: Refusal): Error {
  const errors = REFUSALS[transport]
  switch (refusal.kind) {
    case 'origin': return new errors.origin(JSON.stringify(refusal.origin))
    case 'capacity': return new errors.capacity(refusal.limit)
    case 'unauthenticated': return new errors.unauthenticated(refusal.reason)
  }
}

/**
 * Admits `request` or throws the transport's error (a 401 carries `WWW-Authenticate: Bearer`). `counted: false`
 * skips the per-address connection limit, for a route that holds no connection open.
 */
export async function admitRequest (admission: Admission<FastifyRequest>, transport: Transport, request: FastifyRequest,
  reply: FastifyReply, options: { counted?: boolean } = {}): Promise<GatewayUser | null> {
  const result = await admission.admit(doorOf(request), options)
  if (result.ok) return result.user
  const { refusal } = result
  if (refusal.kind === 'origin') {
    request.log.info({ transport, origin: refusal.origin }, 'refused: origin not allowed')
  } else if (refusal.kind === 'unauthenticated') {
    reply.header('www-authenticate', 'Bearer')
    request.log.info({ transport, reason: refusal.reason }, 'refused: authentication failed')
  } else {
    request.log.debug({ transport, limit: refusal.limit }, 'refused: too many connections from this address')
  }
  throw refusalError(transport, refusal)
}

/** Throws the transport's 403 for the request's Origin (a preflight from an origin that is not allowed). */
export function refuseOrigin (transport: Transport, request: FastifyRequest): never {
  const origin = String(request.headers.origin ?? null)
  request.log.info({ transport, origin }, 'refused: origin not allowed')
  throw refusalError(transport, { kind: 'origin', status: 403, origin })
}

/**
 * CORS response headers for the request's Origin: `{}` without Origin, null for an Origin that is not allowed. A
 * listed (echoed) origin may send credentials (cookies, EventSource `withCredentials`); `*` never can.
 */
export function corsHeaders (admission: Admission<FastifyRequest>, request: FastifyRequest): Record<string, string> | null {
  const origin = request.headers.origin
  if (origin === undefined) return {}
  const value = admission.origins.corsValue(origin, requestOrigin(request))
  if (value === null) return null
  return value === '*'
    ? { 'access-control-allow-origin': '*' }
    : { 'access-control-allow-origin': value, 'access-control-allow-credentials': 'true', vary: 'Origin' }
}
