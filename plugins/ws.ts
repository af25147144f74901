import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { fnOption, parseOptions, pathOption } from '../lib/options.js'
import { Admission } from '../lib/admission/admission.js'
import type { AuthorizeRoom } from '../lib/auth/policy.js'
import { ensureRooms } from './rooms.js'
import { admissionOptions, socketOptions } from './shared/options.js'
import { ensureWebsocket } from './shared/socket.js'
import { wsRoutes } from '../routes/ws.js'

const WsOptions = z.strictObject({
  /** the upgrade route */
  path: pathOption.default('/ws'),
  ...admissionOptions,
  ...socketOptions,
  /** (user, room) => boolean; decides publishing alone when given; default: clientPublishRooms globs and the right to join */
  authorizePublish: fnOption<AuthorizeRoom>('(user, room) => boolean'),
  /** globs clients may publish to (used when authorizePublish is not given); default none */
  clientPublishRooms: z.array(z.string().min(1)).default([])
})

/** The options of `wsGateway` (docs/ws.md). */
export type WsGatewayOptions = z.input<typeof WsOptions>

/**
 * The ws gateway (docs/ws.md, docs/protocol.md): WebSocket rooms on `path`, sharing `app.rooms` with every other
 * gateway. @fastify/websocket is registered in the host's scope unless already there, so rtc shares the one upgrade
 * listener.
 */
async function wsGatewayPlugin (app: FastifyInstance, raw: WsGatewayOptions) {
  const options = parseOptions('fastify-gateways/ws', WsOptions, raw)
  const registry = await ensureRooms(app)
  await ensureWebsocket(app, { maxPayload: options.maxPayload, closeTimeoutMs: options.closeTimeoutMs })
  const { path, closeTimeoutMs, maxPayload, pingMs, maxRoomsPerConnection, ratePerSec, rateBurst, sendBufferBytes, bytesPerSec, bytesBurst, ipBytesPerSec, ipBytesBurst } = options
  await app.register(wsRoutes, {
    path,
    registry,
    admission: new Admission<FastifyRequest>(options),
    limits: { maxPayload, pingMs, maxRoomsPerConnection, ratePerSec, rateBurst, sendBufferBytes, bytesPerSec, bytesBurst, ipBytesPerSec, ipBytesBurst },
    closeTimeoutMs
  })
}

export const wsGateway = fp(wsGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/ws' })
export default wsGateway
