import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { ensureRooms } from './rooms.js'
import { isFunction, parseOptions } from '../lib/options.js'
import { createOriginPolicy } from '../lib/auth/origin.js'
import { createRoomPolicy, withUserRoomPrivacy, type AuthorizeRoom } from '../lib/auth/policy.js'
import type { Authenticate } from '../lib/auth/user.js'
import { IpCounter } from '../lib/limits/ip-counter.js'
import { SseHub } from '../lib/sse/hub.js'
import { sseRoutes } from '../routes/sse.js'

const SseOptionsSchema = z.strictObject({
  /** the stream's route */
  path: z.string().regex(/^\/[^\s?#]*$/, { error: 'must be a path starting with /' }).default('/sse'),
  /** verifies `?token=` (or `Authorization: Bearer`); null = anonymous; throwing answers 401. Default: everyone anonymous */
  authenticate: z.custom<Authenticate>(isFunction, { error: 'must be a function (token, request) => user | null' }).optional(),
  /** may `user` join `room`? Default: the shared room policy (own user room, token `rooms` claim, `publicRooms`) */
  authorizeJoin: z.custom<AuthorizeRoom>(isFunction, { error: 'must be a function (user, room) => boolean' }).optional(),
  /** Origins allowed to open a stream (CORS); empty = same origin only; `*` = any */
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /** globs anonymous streams may join, for the default `authorizeJoin` */
  publicRooms: z.array(z.string()).default(['public:*']),
  /** interval of `: ping` comments */
  heartbeatMs: z.number().int().min(10).max(3_600_000).default(15_000),
  /** the `retry:` the stream starts with: how long a browser waits before it reconnects */
  retryMs: z.number().int().min(0).max(3_600_000).default(3000),
  maxRoomsPerStream: z.number().int().min(1).max(10_000).default(32),
  maxConnectionsPerIp: z.number().int().min(1).default(1000),
  /** bytes a stream may queue while its client does not read; past it the stream is ended (the browser resumes) */
  sendBufferBytes: z.number().int().min(1024).default(1024 * 1024)
})

export type SseOptions = z.input<typeof SseOptionsSchema>

/**
 * `GET /sse?room=a&room=b`: Server-Sent Events over the shared room registry (CONTRACT section 5). Streams are
 * registry members whose events are encoded once per publish for all of them; `Last-Event-ID` resumes every room
 * of the stream exactly. Streams end cleanly on client disconnect, on back-pressure past `sendBufferBytes`, and on
 * shutdown (`preClose`).
 */
async function sseGatewayPlugin (app: FastifyInstance, raw: SseOptions) {
  const options = parseOptions('fastify-gateways/sse', SseOptionsSchema, raw)
  const registry = await ensureRooms(app)
  const hub = new SseHub(options.heartbeatMs)
  const authorizeJoin = withUserRoomPrivacy(options.authorizeJoin ?? createRoomPolicy({ publicRooms: options.publicRooms }).canJoin)

  await app.register(async function sseScope (scope) {
    await scope.register(sseRoutes, {
      path: options.path,
      registry,
      hub,
      authenticate: options.authenticate,
      authorizeJoin,
      origins: createOriginPolicy(options.allowedOrigins),
      ipCounter: new IpCounter(options.maxConnectionsPerIp),
      maxConnectionsPerIp: options.maxConnectionsPerIp,
      maxRoomsPerStream: options.maxRoomsPerStream,
      retryMs: options.retryMs,
      sendBufferBytes: options.sendBufferBytes
    })
  })

  // end every stream before the server stops listening: server.close() waits for open connections
  app.addHook('preClose', async () => { hub.closeAll() })
  app.addHook('onClose', async () => { hub.closeAll() })
}

export const sseGateway = fp(sseGatewayPlugin, {
  fastify: '5.x',
  name: 'fastify-gateways/sse'
})
export default sseGateway
