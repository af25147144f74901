import type { z } from 'zod'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { ConnectionLog, OpHandler } from '../lib/ws/connection.js'
import { opSchema, RoomSchema } from '../lib/ws/protocol.js'

/** `{"op":"presence","room":"r","ref"?}` (docs/protocol.md, extensions) */
export const PresenceFrame = opSchema('presence', { room: RoomSchema })
export type PresenceFrame = z.infer<typeof PresenceFrame>

/**
 * The `presence` op of `/ws`, an extension of the protocol (docs/protocol.md): who is in a room this connection has
 * joined, answered `{"op":"presence","room","members":<connections of every transport>,"users":[<user ids>],"ref"?}`
 * (the same numbers as the external API's `GET /api/rooms/:room`, every instance with Redis). A room the connection
 * is not in: `FORBIDDEN` (a member may see who else is there; nobody else may). The connection's frame rate limit
 * bounds how often it may ask.
 */
export function presenceOp (registry: RoomRegistry, log: ConnectionLog): OpHandler<PresenceFrame> {
  return {
    schema: PresenceFrame,
    async handle ({ room }, conn, ref) {
      if (!conn.rooms.has(room)) {
        conn.fail('FORBIDDEN', `presence of room ${room} is for its members: join it first`, ref)
        return
      }
      let members: number
      let users: string[]
      try {
        ({ members, users } = await registry.presence(room))
      } catch (err) {
        log.warn({ err, room, conn: conn.id }, 'presence failed')
        conn.fail('UNAVAILABLE', 'presence is not available; try again later', ref)
        return
      }
      conn.send(ref === undefined ? { op: 'presence', room, members, users } : { op: 'presence', room, members, users, ref })
    }
  }
}
