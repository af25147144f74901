import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Admission } from '../lib/admission/admission.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { OpHandler } from '../lib/ws/connection.js'
import { admitJoin } from '../lib/ws/join.js'
import { JoinFrame, LeaveFrame, PublishFrame, ServerFrames } from '../lib/ws/protocol.js'
import { socketRoute } from '../plugins/shared/socket.js'
import type { SocketLimits } from '../plugins/shared/options.js'
import { presenceOp } from './ws-presence.js'

export interface WsRoutesOptions {
  path: string
  registry: RoomRegistry
  admission: Admission<FastifyRequest>
  limits: SocketLimits
  closeTimeoutMs: number
}

/** `/ws` (docs/protocol.md): join with resume, leave, publish with ack; admission, auth, ping and limits are shared. */
export async function wsRoutes (scope: FastifyInstance, options: WsRoutesOptions) {
  const { registry, admission, limits } = options

  const join: OpHandler<JoinFrame> = {
    schema: JoinFrame,
    async handle ({ room, since, position }, conn, ref) {
      if (!await admitJoin(conn, room, ref, { admission, maxRooms: limits.maxRoomsPerConnection, log: scope.log })) return
      await conn.joinRoom(room, {
        ...(since === undefined ? {} : { since }),
        announce: (recovered, at) => { conn.send(ServerFrames.joined(room, ref, recovered, position === true ? at : undefined)) }
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
      const { allowed, err } = await admission.publish(conn.user, room)
      if (err !== undefined) scope.log.error({ err, room, conn: conn.id }, 'authorizePublish failed')
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

  socketRoute(scope, {
    path: options.path,
    transport: 'ws',
    registry,
    admission,
    limits,
    closeTimeoutMs: options.closeTimeoutMs,
    ops: { join, leave, publish, presence: presenceOp(registry, scope.log) }
  })
}
