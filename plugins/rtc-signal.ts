import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/websocket'
import { parseOptions, isFunction } from '../lib/options.js'
import type { Authenticate } from '../lib/auth/user.js'
import type { AuthorizeRoom } from '../lib/auth/policy.js'
import { createRoomAccess } from '../lib/ws/access.js'
import type { RtcRooms } from '../lib/rtc/peers.js'
import { ensureRooms } from './rooms.js'
import { ensureWebsocket, type SocketRoute } from '../routes/ws-connection.js'
import { rtcRoutes } from '../routes/rtc.js'
import { iceServersRoute } from '../routes/rtc-ice.js'

const int = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback)
const fn = <T>(what: string) => z.custom<T>(isFunction, { message: `must be a function ${what}` }).optional()
const path = z.string().regex(/^\/\S*$/, { message: 'must be a path starting with /' })

const RtcOptions = z.strictObject({
  /** the signaling socket's upgrade route */
  path: path.default('/rtc'),
  /** the ICE server list route; false: none */
  iceServersPath: z.union([path, z.literal(false)]).default('/rtc/ice-servers'),
  /** (token | null, request) => user | null; throwing refuses (401 before the upgrade and on the ICE route) */
  authenticate: fn<Authenticate>('(token, request) => user | null'),
  /** (user, room) => boolean; default: own user:<id>, the token's rooms claim, publicRooms */
  authorizeJoin: fn<AuthorizeRoom>('(user, room) => boolean'),
  /** Origins allowed besides same-origin; '*' allows every origin */
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /** globs anyone may join (used when authorizeJoin is not given) */
  publicRooms: z.array(z.string().min(1)).default(['public:*']),
  /** rtc peers a room may hold (a full mesh grows with the square of it) */
  roomCapacity: int(2, 10_000, 8),
  /** signals per second per connection, sustained */
  signalRatePerSec: z.number().positive().max(1_000_000).default(50),
  /** signals a connection may send in a burst (ICE gathering sends many at once); default max(100, 2 × rate) */
  signalBurst: z.number().int().min(1).max(1_000_000).optional(),
  /** largest `data` of one signal, in bytes of JSON */
  maxSignalBytes: int(256, 16 * 1024 * 1024, 32_768),
  /** how long a join waits for the peers on other instances to make themselves known (a bus between instances) */
  discoveryTimeoutMs: int(0, 60_000, 1000),
  /** STUN URLs served by the ICE route */
  stunUrls: z.array(z.string().regex(/^stuns?:\S+$/, { message: 'must start with stun: or stuns:' })).default([]),
  /** TURN URLs served by the ICE route, with time-limited credentials (needs turnSecret) */
  turnUrls: z.array(z.string().regex(/^turns?:\S+$/, { message: 'must start with turn: or turns:' })).default([]),
  /** the TURN server's shared secret (coturn: static-auth-secret with use-auth-secret) */
  turnSecret: z.string().min(1).optional(),
  /** lifetime of TURN credentials in seconds */
  turnTtlS: int(60, 7 * 24 * 3600, 3600),
  maxPayload: int(64, 64 * 1024 * 1024, 65_536),
  pingMs: int(10, 3_600_000, 25_000),
  maxRoomsPerConnection: int(1, 1_000_000, 100),
  maxConnectionsPerIp: int(1, 10_000_000, 1000),
  ratePerSec: z.number().positive().max(1_000_000).default(50),
  rateBurst: int(1, 1_000_000, 100),
  sendBufferBytes: int(1024, 1024 * 1024 * 1024, 1024 * 1024),
  /** how long a closing socket (1001 at shutdown, 1013 for a slow reader) may take before it is destroyed */
  closeTimeoutMs: int(10, 600_000, 3000),
  /** receives the socket route and the peer bookkeeping once they exist (tests, metrics) */
  onRoute: fn<(route: SocketRoute, peers: RtcRooms) => void>('(route, peers) => void')
}).refine((o) => o.turnUrls.length === 0 || o.turnSecret !== undefined, {
  message: 'is required with turnUrls: TURN entries carry time-limited credentials made with it',
  path: ['turnSecret']
})

export type RtcSignalGatewayOptions = z.input<typeof RtcOptions>

/**
 * The rtc-signal gateway (CONTRACT section 6): WebRTC signaling in rooms on `path`, and the ICE server list. Peers are
 * members of the shared `app.rooms`, so presence counts them and room events reach them; the socket machinery
 * (auth before the upgrade, ping, limits, 1001 on shutdown) is the ws gateway's, on the same upgrade listener.
 */
async function rtcSignalGatewayPlugin (app: FastifyInstance, raw: RtcSignalGatewayOptions) {
  const options = parseOptions('fastify-gateways/rtc-signal', RtcOptions, raw)
  const registry = await ensureRooms(app)
  await ensureWebsocket(app, { maxPayload: options.maxPayload, closeTimeoutMs: options.closeTimeoutMs })
  const access = createRoomAccess({
    ...(options.authorizeJoin === undefined ? {} : { authorizeJoin: options.authorizeJoin }),
    publicRooms: options.publicRooms
  })
  const authenticate = options.authenticate === undefined ? {} : { authenticate: options.authenticate }
  if (options.turnSecret !== undefined && options.turnUrls.length === 0) {
    app.log.warn('rtc-signal: turnSecret is set but no turnUrls: the ICE route serves no TURN entry')
  }
  await app.register(async function rtcScope (scope) {
    await scope.register(rtcRoutes, {
      path: options.path,
      registry,
      access,
      ...authenticate,
      allowedOrigins: options.allowedOrigins,
      limits: {
        maxPayload: options.maxPayload,
        pingMs: options.pingMs,
        maxConnectionsPerIp: options.maxConnectionsPerIp,
        maxRoomsPerConnection: options.maxRoomsPerConnection,
        ratePerSec: options.ratePerSec,
        rateBurst: options.rateBurst,
        sendBufferBytes: options.sendBufferBytes
      },
      closeTimeoutMs: options.closeTimeoutMs,
      roomCapacity: options.roomCapacity,
      signalRatePerSec: options.signalRatePerSec,
      signalBurst: options.signalBurst ?? Math.max(100, Math.ceil(2 * options.signalRatePerSec)),
      maxSignalBytes: options.maxSignalBytes,
      discoveryTimeoutMs: options.discoveryTimeoutMs,
      ...(options.onRoute === undefined ? {} : { onRoute: options.onRoute })
    })
    if (options.iceServersPath !== false) {
      await scope.register(iceServersRoute, {
        path: options.iceServersPath,
        ...authenticate,
        allowedOrigins: options.allowedOrigins,
        stunUrls: options.stunUrls,
        turnUrls: options.turnUrls,
        ...(options.turnSecret === undefined ? {} : { turnSecret: options.turnSecret }),
        turnTtlS: options.turnTtlS
      })
    }
  })
}

export const rtcSignalGateway = fp(rtcSignalGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/rtc-signal' })
export default rtcSignalGateway
