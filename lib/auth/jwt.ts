import { jwtVerify } from 'jose'
import { z } from 'zod'
import { GatewayErrors } from '../errors.js'
import type { GatewayUser } from './user.js'

const Claims = z.object({
  sub: z.string().min(1).max(128),
  rooms: z.array(z.string().min(1).max(160)).max(1000).optional()
})

/**
 * A refused credential (code `GW_UNAUTHENTICATED`, status 401). Throw it from a host's `authenticate` to refuse with
 * its message: the message is sent to the client, so it must not carry the token or anything secret. Other errors a
 * host's `authenticate` throws are answered with "invalid token".
 */
export const AuthError = GatewayErrors.UNAUTHENTICATED

/** Shortest HS256 secret accepted: RFC 7518 asks for a key of at least the hash's size, 256 bits. */
export const MIN_JWT_SECRET_BYTES = 32

export interface JwtAuthenticatorOptions {
  /** seconds of clock difference tolerated on `exp` and `nbf`; default 5 */
  clockToleranceS?: number
}

/**
 * HS256 JWT verification (`AUTH_JWT_SECRET`): `sub` is the user id, `exp` is enforced when present, an optional
 * `rooms` claim lists room names or globs the user may join. No token means anonymous. A secret shorter than 32
 * bytes (an empty one included) is refused here, before any token is checked against it (GW_JWT_SECRET).
 */
export function createJwtAuthenticator (secret: string, options: JwtAuthenticatorOptions = {}): (token: string | null, request?: unknown) => Promise<GatewayUser | null> {
  const key = new TextEncoder().encode(typeof secret === 'string' ? secret : '')
  if (key.length < MIN_JWT_SECRET_BYTES) throw new GatewayErrors.JWT_SECRET(MIN_JWT_SECRET_BYTES, key.length)
  const clockTolerance = options.clockToleranceS ?? 5
  return async (token) => {
    if (token === null) return null
    let payload: unknown
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'], clockTolerance }))
    } catch (err) {
      const code = (err as { code?: string }).code
      throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'invalid token')
    }
    const claims = Claims.safeParse(payload)
    if (!claims.success) throw new AuthError('token lacks a valid sub or rooms claim')
    return { id: claims.data.sub, rooms: claims.data.rooms ?? [], claims: payload as Record<string, unknown> }
  }
}
