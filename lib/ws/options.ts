import { z } from 'zod'
import { isFunction } from '../options.js'
import type { Authenticate } from '../auth/user.js'
import type { AuthorizeRoom } from '../auth/policy.js'
import type { ConnectionLimits } from './connection.js'

/** a whole number option within bounds, with its default */
export const intOption = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback)
/** an optional function option; `what` is its signature, for the error message */
export const fnOption = <T>(what: string) => z.custom<T>(isFunction, { message: `must be a function ${what}` }).optional()
/** a route path option */
export const pathOption = z.string().regex(/^\/\S*$/, { message: 'must be a path starting with /' })

/** The options every socket gateway (ws, rtc) takes: who may connect and join, and the connection limits. */
export const socketOptionsShape = {
  /** (token | null, request) => user | null; throwing refuses (401 before the upgrade, close 1008 after an auth frame) */
  authenticate: fnOption<Authenticate>('(token, request) => user | null'),
  /** (user, room) => boolean; default: own user:<id>, the token's rooms claim, publicRooms */
  authorizeJoin: fnOption<AuthorizeRoom>('(user, room) => boolean'),
  /** Origins allowed besides same-origin; '*' allows every origin */
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /** globs anyone may join (used when authorizeJoin is not given) */
  publicRooms: z.array(z.string().min(1)).default(['public:*']),
  maxPayload: intOption(64, 64 * 1024 * 1024, 65_536),
  pingMs: intOption(10, 3_600_000, 25_000),
  maxRoomsPerConnection: intOption(1, 1_000_000, 100),
  maxConnectionsPerIp: intOption(1, 10_000_000, 1000),
  ratePerSec: z.number().positive().max(1_000_000).default(50),
  rateBurst: intOption(1, 1_000_000, 100),
  sendBufferBytes: intOption(1024, 1024 * 1024 * 1024, 1024 * 1024),
  /** inbound bytes per second per connection, sustained, and in a burst (at least maxPayload); docs/security.md */
  bytesPerSec: intOption(1024, 1024 * 1024 * 1024, 65_536),
  bytesBurst: intOption(1024, 1024 * 1024 * 1024, 262_144),
  /** the same per client address, shared by all its connections to the route */
  ipBytesPerSec: intOption(1024, 1024 * 1024 * 1024, 262_144),
  ipBytesBurst: intOption(1024, 1024 * 1024 * 1024, 1024 * 1024),
  /** how long a closing socket (1001 at shutdown, 1013 for a slow reader) may take before it is destroyed */
  closeTimeoutMs: intOption(10, 600_000, 3000)
}

export type SocketOptions = z.output<z.ZodObject<typeof socketOptionsShape>>

/** The limits a socket route enforces per connection and per address. */
export type SocketLimits = ConnectionLimits & {
  pingMs: number
  maxConnectionsPerIp: number
  maxRoomsPerConnection: number
  /** inbound bytes per second per client address (all its connections to the route), sustained and in a burst */
  ipBytesPerSec?: number
  ipBytesBurst?: number
}

/** What every socket route (ws, rtc) takes from the shared options, the same way. */
export interface SocketRouteBase {
  authenticate?: Authenticate
  allowedOrigins: readonly string[]
  limits: SocketLimits
  closeTimeoutMs: number
}

export function socketRouteBase (options: SocketOptions): SocketRouteBase {
  return {
    ...(options.authenticate === undefined ? {} : { authenticate: options.authenticate }),
    allowedOrigins: options.allowedOrigins,
    limits: {
      maxPayload: options.maxPayload,
      pingMs: options.pingMs,
      maxConnectionsPerIp: options.maxConnectionsPerIp,
      maxRoomsPerConnection: options.maxRoomsPerConnection,
      ratePerSec: options.ratePerSec,
      rateBurst: options.rateBurst,
      sendBufferBytes: options.sendBufferBytes,
      bytesPerSec: options.bytesPerSec,
      bytesBurst: options.bytesBurst,
      ipBytesPerSec: options.ipBytesPerSec,
      ipBytesBurst: options.ipBytesBurst
    },
    closeTimeoutMs: options.closeTimeoutMs
  }
}
