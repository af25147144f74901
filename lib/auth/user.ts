import { compileGlobs, type RoomGlobs } from '../rooms/names.js'

/** Who is on the other end of a connection. `rooms` are globs from the token's `rooms` claim. */
export interface GatewayUser {
  id: string
  rooms?: readonly string[]
  /** the verified claims, for host code */
  claims?: Readonly<Record<string, unknown>>
}

/**
 * Verifies a credential (a JWT from `?token=`, `Authorization: Bearer` or an `auth` frame) and returns the user, or
 * null when `token` is null and anonymous access is fine. Throwing (or rejecting) means "refuse": 401 before an
 * upgrade or a stream, `UNAUTHENTICATED` and close 1008 after one. A token answered with null is refused too.
 * `Request` is the framework's request the credential came with (the gateways pass a `FastifyRequest`).
 */
export type Authenticate<Request = unknown> = (token: string | null, request: Request) => GatewayUser | null | Promise<GatewayUser | null>

const claimGlobs = new WeakMap<GatewayUser, RoomGlobs>()

/** The compiled `rooms` claim of a user, cached per user object. */
export function userRoomGlobs (user: GatewayUser): RoomGlobs {
  let globs = claimGlobs.get(user)
  if (globs === undefined) {
    globs = compileGlobs(user.rooms ?? [])
    claimGlobs.set(user, globs)
  }
  return globs
}
