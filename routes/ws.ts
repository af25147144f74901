import type { FastifyInstance } from 'fastify'
import type { SocketRouteBase } from '../lib/ws/options.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { RoomAccess } from '../lib/ws/access.js'
import type { OpHandler } from '../lib/ws/connection.js'
import {
  JoinFrame, LeaveFrame, PublishFrame, ServerFrames
} from '../lib/ws/protocol.js'
import { admitJoin, socketRoute, type SocketRoute } from './ws-connection.js'
import { presenceOp } from './ws-presence.js'

export interface WsRoutesOptions extends SocketRouteBase {
  path: string
  registry: RoomRegistry
  access: RoomAccess
  /** receives the route once it exists (open connections, for tests and metrics) */
  onRoute?: (route: SocketRoute) => void
}

/** `/ws` (CONTRACT section 4): join with resume, leave, publish with ack; auth, ping and the limits are shared. */
export async function wsRoutes (scope: FastifyInstance, options: WsRoutesOptions) {
  const { registry, access, limits } = options

  const join: OpHandler<JoinFrame> = {
    schema: JoinFrame,
    async handle ({ room, since }, conn, ref) {
      if (!await admitJoin(conn, room, ref, { access, maxRooms: limits.maxRoomsPerConnection, log: scope.log })) return
      await conn.joinRoom(room, {
        ...(since === undefined ? {} : { since }),
        announce: (recovered) => { conn.send(ServerFrames.joined(room, ref, recovered)) }
      })
    }
  }

  const leave: OpHandler<LeaveFrame> = {
    schema: LeaveFrame,
    handle ({ room }, conn, ref) {
      if (conn.leaveRoom(room)) conn.send(ServerFrames.left(room, ref))
      else conn.fail('NOT_FOUND', `not a member of room ${room}`, ref)
    }
  }

  const publish: OpHandler<PublishFrame> = {
    schema: PublishFrame,
    async handle ({ room, event, data }, conn, ref) {
      let allowed: boolean
      try {
        allowed = await access.canPublish(conn.user, room)
      } catch (err) {
        scope.log.error({ err, room, conn: conn.id }, 'authorizePublish failed')
        allowed = false
      }
      if (!allowed) {
        conn.fail('FORBIDDEN', `publishing to room ${room} is not allowed`, ref)
        return
      }
      let id: string
      try {
        ({ id } = await registry.publish(room, event, data))
      } catch (err) {
        scope.log.warn({ err, room, conn: conn.id }, 'client publish failed')
        conn.fail('UNAVAILABLE', 'the event could not be published; try again later', ref)
        return
      }
      conn.send(ServerFrames.ack(id, ref))
    }
  }

  const route = socketRoute(scope, {
    path: options.path,
    transport: 'ws',
    registry,
    ...(options.authenticate === undefined ? {} : { authenticate: options.authenticate }),
    allowedOrigins: options.allowedOrigins,
    limits,
    closeTimeoutMs: options.closeTimeoutMs,
    ops: { join, leave, publish, presence: presenceOp(registry, scope.log) }
  })
  options.onRoute?.(route)
}
