import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/websocket'
import { parseOptions, isFunction } from '../lib/options.js'
import type { Authenticate } from '../lib/auth/user.js'
import type { AuthorizeRoom } from '../lib/auth/policy.js'
import { createRoomAccess } from '../lib/ws/access.js'
import { ensureRooms } from './rooms.js'
import { ensureWebsocket } from '../routes/ws-connection.js'
import { wsRoutes } from '../routes/ws.js'

const int = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback)
const fn = <T>(what: string) => z.custom<T>(isFunction, { message: `must be a function ${what}` }).optional()

const WsOptions = z.strictObject({
  /** the upgrade route */
  path: z.string().regex(/^\/\S*$/, { message: 'must be a path starting with /' }).default('/ws'),
  /** (token | null, request) => user | null; throwing refuses (401 before the upgrade, close 1008 after an auth frame) */
  authenticate: fn<Authenticate>('(token, request) => user | null'),
  /** (user, room) => boolean; default: own user:<id>, the token's rooms claim, publicRooms */
  authorizeJoin: fn<AuthorizeRoom>('(user, room) => boolean'),
  /** (user, room) => boolean; default: clientPublishRooms globs and the right to join */
  authorizePublish: fn<AuthorizeRoom>('(user, room) => boolean'),
  /** Origins allowed besides same-origin; '*' allows every origin */
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /** globs anyone may join (used when authorizeJoin is not given) */
  publicRooms: z.array(z.string().min(1)).default(['public:*']),
  /** globs clients may publish to (used when authorizePublish is not given) */
  clientPublishRooms: z.array(z.string().min(1)).default([]),
  maxPayload: int(64, 64 * 1024 * 1024, 65_536),
  pingMs: int(10, 3_600_000, 25_000),
  maxRoomsPerConnection: int(1, 1_000_000, 100),
  maxConnectionsPerIp: int(1, 10_000_000, 1000),
  ratePerSec: z.number().positive().max(1_000_000).default(50),
  rateBurst: int(1, 1_000_000, 100),
  sendBufferBytes: int(1024, 1024 * 1024 * 1024, 1024 * 1024),
  /** how long a closing socket (1001 at shutdown, 1013 for a slow reader) may take before it is destroyed */
  closeTimeoutMs: int(10, 600_000, 3000)
})

export type WsGatewayOptions = z.input<typeof WsOptions>

/**
 * The ws gateway (CONTRACT section 4): WebSocket rooms on `path`, sharing `app.rooms` with every other gateway.
 * @fastify/websocket is registered in the host's scope unless already there, so rtc shares the one upgrade listener.
 */
async function wsGatewayPlugin (app: FastifyInstance, raw: WsGatewayOptions) {
  const options = parseOptions('fastify-gateways/ws', WsOptions, raw)
  const registry = await ensureRooms(app)
  await ensureWebsocket(app, { maxPayload: options.maxPayload, closeTimeoutMs: options.closeTimeoutMs })
  const access = createRoomAccess({
    ...(options.authorizeJoin === undefined ? {} : { authorizeJoin: options.authorizeJoin }),
    ...(options.authorizePublish === undefined ? {} : { authorizePublish: options.authorizePublish }),
    publicRooms: options.publicRooms,
    clientPublishRooms: options.clientPublishRooms
  })
  await app.register(wsRoutes, {
    path: options.path,
    registry,
    access,
    ...(options.authenticate === undefined ? {} : { authenticate: options.authenticate }),
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
    closeTimeoutMs: options.closeTimeoutMs
  })
}

export const wsGateway = fp(wsGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/ws' })
export default wsGateway
