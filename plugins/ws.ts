import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/websocket'
import { parseOptions } from '../lib/options.js'
import type { AuthorizeRoom } from '../lib/auth/policy.js'
import { createRoomAccess } from '../lib/ws/access.js'
import { fnOption, pathOption, socketOptionsShape, socketRouteBase } from '../lib/ws/options.js'
import { ensureRooms } from './rooms.js'
import { ensureWebsocket } from '../routes/ws-connection.js'
import { wsRoutes } from '../routes/ws.js'

const WsOptions = z.strictObject({
  /** the upgrade route */
  path: pathOption.default('/ws'),
  ...socketOptionsShape,
  /** (user, room) => boolean; default: clientPublishRooms globs and the right to join */
  authorizePublish: fnOption<AuthorizeRoom>('(user, room) => boolean'),
  /** globs clients may publish to (used when authorizePublish is not given) */
  clientPublishRooms: z.array(z.string().min(1)).default([])
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
    ...socketRouteBase(options)
  })
}

export const wsGateway = fp(wsGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/ws' })
export default wsGateway
