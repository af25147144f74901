import type { Authenticate, GatewayUser } from '../auth/user.js'
import { IpCounter } from '../limits/ip-counter.js'
import { createRoomAccess, type RoomAccess, type RoomAccessOptions } from './access.js'
import { createOriginPolicy, type OriginPolicy, type RequestOrigin } from './origin.js'

/**
 * The door of every transport (ws and rtc upgrades, SSE streams, the ICE route), written once and free of any
 * framework: who may come in (Origin, per-address connection limit, credential) and which rooms they may join.
 * Transports translate a request into a `Door` and a refusal into their answer (an HTTP status before an upgrade or
 * a stream, an `error` frame after one); the decisions and their order are the same for all of them.
 */

export interface AdmissionOptions<Request> extends RoomAccessOptions {
  /** verifies a credential; absent: everyone is anonymous and a token changes nothing */
  authenticate?: Authenticate<Request> | undefined
  /** Origins allowed besides same-origin; `*` allows every origin */
  allowedOrigins?: readonly string[]
  /** open connections per client address; absent: not limited (a plain request/response route) */
  maxConnectionsPerIp?: number | undefined
}

/** What the door looks at, taken from the request by the transport. */
export interface Door<Request> {
  /** the Origin header, absent for non-browser clients */
  origin: string | undefined
  /** the request's own scheme and host, as the server sees them */
  self: RequestOrigin
  /** the client's address, for the per-address limit */
  address: string
  /** the credential (`?token=` or Bearer), null when none was sent */
  token: string | null
  /** handed to `authenticate` */
  request: Request
}

export type Refusal =
  | { readonly kind: 'origin', readonly status: 403, readonly origin: string }
  | { readonly kind: 'capacity', readonly status: 429, readonly limit: number }
  | { readonly kind: 'unauthenticated', readonly status: 401, readonly reason: string }

export type Admitted =
  | { readonly ok: true, readonly user: GatewayUser | null }
  | { readonly ok: false, readonly refusal: Refusal }

export type JoinRefusal =
  | { readonly kind: 'rooms-limit', readonly message: string }
  | { readonly kind: 'forbidden', readonly message: string, readonly err?: unknown }

export class Admission<Request = unknown> {
  readonly origins: OriginPolicy
  readonly access: RoomAccess
  private readonly authenticator: Authenticate<Request> | undefined
  private readonly perAddress: IpCounter | null
  readonly maxConnectionsPerIp: number | undefined

  constructor (options: AdmissionOptions<Request> = {}) {
    this.origins = createOriginPolicy(options.allowedOrigins ?? [])
    this.access = createRoomAccess(options)
    this.authenticator = options.authenticate
    this.maxConnectionsPerIp = options.maxConnectionsPerIp
    this.perAddress = options.maxConnectionsPerIp === undefined ? null : new IpCounter(options.maxConnectionsPerIp)
  }

  /** True when a credential is checked at all (an `authenticate` was given). */
  get authenticates (): boolean {
    return this.authenticator !== undefined
  }

  /**
   * The whole check before a connection (or a response) starts, in this order: the Origin (403), the address's
   * open connections (429; nothing is counted here: `acquire` once the connection exists), the credential (401).
   * `counted: false` skips the connection limit (a route that holds no connection open).
   */
  async admit (door: Door<Request>, options: { counted?: boolean } = {}): Promise<Admitted> {
    const refused = this.checkOrigin(door.origin, door.self) ?? (options.counted === false ? null : this.checkCapacity(door.address))
    if (refused !== null) return { ok: false, refusal: refused }
    return await this.identify(door.token, door.request)
  }

  checkOrigin (origin: string | undefined, self: RequestOrigin): Refusal | null {
    return this.origins.allowed(origin, self) ? null : { kind: 'origin', status: 403, origin: String(origin) }
  }

  checkCapacity (address: string): Refusal | null {
    if (this.perAddress === null || this.perAddress.count(address) < (this.maxConnectionsPerIp as number)) return null
    return { kind: 'capacity', status: 429, limit: this.maxConnectionsPerIp as number }
  }

  /**
   * The user of a credential. Without an `authenticate` everyone is anonymous. A thrown error refuses with its
   * message when it is a 401 error (`AuthError`), else with "invalid token": a host error's text never reaches the
   * client. A token answered with null is refused ("no user for this token"); no token answered with null is anonymous.
   */
  async identify (token: string | null, request: Request): Promise<Admitted> {
    const authenticate = this.authenticator
    if (authenticate === undefined) return { ok: true, user: null }
    let user: GatewayUser | null
    try {
      user = await authenticate(token, request)
    } catch (err) {
      return { ok: false, refusal: { kind: 'unauthenticated', status: 401, reason: refusalReason(err) } }
    }
    if (user === null || user === undefined) {
      return token === null
        ? { ok: true, user: null }
        : { ok: false, refusal: { kind: 'unauthenticated', status: 401, reason: 'no user for this token' } }
    }
    return { ok: true, user }
  }

  /** Counts one more open connection from `address`; false (nothing counted) at the limit. */
  acquire (address: string): boolean {
    return this.perAddress === null || this.perAddress.acquire(address)
  }

  release (address: string): void {
    this.perAddress?.release(address)
  }

  /**
   * May a connection that is in `joined` rooms (at most `maxRooms`) join `room`? Null when it may; a refusal when
   * the rooms limit is reached or the join rule says no. A join rule that throws refuses (its error is in `err`).
   */
  async join (user: GatewayUser | null, room: string, limit?: { joined: ReadonlySet<string>, maxRooms: number }): Promise<JoinRefusal | null> {
    if (limit !== undefined && !limit.joined.has(room) && limit.joined.size >= limit.maxRooms) {
      return { kind: 'rooms-limit', message: `a connection may be in at most ${limit.maxRooms} rooms` }
    }
    let allowed: boolean
    try {
      allowed = await this.access.canJoin(user, room)
    } catch (err) {
      return { kind: 'forbidden', message: `room ${room} is not allowed`, err }
    }
    return allowed ? null : { kind: 'forbidden', message: `room ${room} is not allowed` }
  }

  /** May `user` publish to `room`? A publish rule that throws refuses; the error is returned for the log. */
  async publish (user: GatewayUser | null, room: string): Promise<{ allowed: boolean, err?: unknown }> {
    try {
      return { allowed: await this.access.canPublish(user, room) }
    } catch (err) {
      return { allowed: false, err }
    }
  }
}

/** The reason of a refused credential, safe to send and log (never the token, never a host error's own text). */
export function refusalReason (err: unknown): string {
  const e = err as { statusCode?: unknown, message?: unknown } | null
  return e !== null && typeof e === 'object' && e.statusCode === 401 && typeof e.message === 'string' && e.message !== ''
    ? e.message
    : 'invalid token'
}
