import { z } from 'zod'
import type { FastifyRequest } from 'fastify'
import { fnOption, intOption } from '../../lib/options.js'
import { isOriginEntry } from '../../lib/admission/origin.js'
import type { AuthorizeRoom } from '../../lib/auth/policy.js'
import type { Authenticate as AuthenticateRequest } from '../../lib/auth/user.js'

/**
 * Verifies a credential (`?token=`, `Authorization: Bearer`, or an `auth` frame) with the request it came with, and
 * returns the user, or null for an anonymous request without a token. Throw (or reject) to refuse: an `AuthError`'s
 * message is sent to the client, any other error is answered "invalid token".
 */
export type Authenticate = AuthenticateRequest<FastifyRequest>

/** The options of who may come in, the same for ws, sse and rtc (docs/configuration.md). */
export const admissionOptions = {
  /** (token | null, request) => user | null; throwing refuses (401 before the upgrade or stream, close 1008 after an auth frame) */
  authenticate: fnOption<Authenticate>('(token, request) => user | null'),
  /** (user, room) => boolean for every room but user:<id> rooms (always their own user's alone); default: the token's rooms claim, then publicRooms */
  authorizeJoin: fnOption<AuthorizeRoom>('(user, room) => boolean'),
  /** Origins allowed besides same-origin (scheme, host and port); '*' allows every origin */
  allowedOrigins: z.array(z.string().refine(isOriginEntry, { message: 'must be * or an origin such as https://app.example.com' })).default([]),
  /** globs anyone may join, for the default join rule */
  publicRooms: z.array(z.string().min(1)).default(['public:*']),
  /** open connections (sockets or streams) per client address */
  maxConnectionsPerIp: intOption(1, 10_000_000, 1000)
}

/** The limits of a socket gateway (ws, rtc), per connection. */
export const socketOptions = {
  /** largest inbound frame in bytes (error TOO_LARGE, close 1009 above it) */
  maxPayload: intOption(64, 64 * 1024 * 1024, 65_536),
  /** server ping interval; a peer that answers nothing for a whole interval is terminated */
  pingMs: intOption(10, 3_600_000, 25_000),
  maxRoomsPerConnection: intOption(1, 1_000_000, 100),
  /** frames per second a connection may send, sustained */
  ratePerSec: z.number().positive().max(1_000_000).default(50),
  /** frames a connection may send in a burst */
  rateBurst: intOption(1, 1_000_000, 100),
  /** bytes a connection may have waiting to be sent before it is closed with 1013 */
  sendBufferBytes: intOption(1024, 1024 * 1024 * 1024, 1024 * 1024),
  /** how long a closing socket (1001 at shutdown, 1013 for a slow reader) may take before it is destroyed */
  closeTimeoutMs: intOption(10, 600_000, 3000),
  /** inbound bytes per second per connection, sustained, and in a burst (at least maxPayload); docs/security.md */
  bytesPerSec: intOption(1024, 1024 * 1024 * 1024, 65_536),
  bytesBurst: intOption(1024, 1024 * 1024 * 1024, 262_144),
  /** the same per client address, shared by all its connections to the route */
  ipBytesPerSec: intOption(1024, 1024 * 1024 * 1024, 262_144),
  ipBytesBurst: intOption(1024, 1024 * 1024 * 1024, 1024 * 1024)
}

/** The socket limits, parsed. */
export type SocketLimits = z.output<z.ZodObject<Omit<typeof socketOptions, 'closeTimeoutMs'>>>
