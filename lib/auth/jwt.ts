import { jwtVerify } from 'jose'
import { z } from 'zod'
import type { Authenticate, GatewayUser } from './user.js'

const Claims = z.object({
  sub: z.string().min(1).max(128),
  rooms: z.array(z.string().min(1).max(160)).max(1000).optional()
})

export class AuthError extends Error {
  readonly code = 'GW_UNAUTHENTICATED'
  readonly statusCode = 401
  constructor (message: string) {
    super(message)
    this.name = 'AuthError'
  }
}

/**
 * HS256 JWT verification (`AUTH_JWT_SECRET`): `sub` is the user id, `exp` is enforced when present, an optional
 * `rooms` claim lists room names or globs the user may join. No token means anonymous.
 */
export function createJwtAuthenticator (secret: string, options: { clockToleranceS?: number } = {}): Authenticate {
  const key = new TextEncoder().encode(secret)
  return async (token) => {
    if (token === null) return null
    let payload: unknown
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'], clockTolerance: options.clockToleranceS ?? 5 }))
    } catch (err) {
      const code = (err as { code?: string }).code
      throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'invalid token')
    }
    const claims = Claims.safeParse(payload)
    if (!claims.success) throw new AuthError('token lacks a valid sub or rooms claim')
    const user: GatewayUser = { id: claims.data.sub, rooms: claims.data.rooms ?? [], claims: payload as Record<string, unknown> }
    return user
  }
}
