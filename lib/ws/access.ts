import { createRoomPolicy, withUserRoomPrivacy, type AuthorizeRoom } from '../auth/policy.js'
import { compileGlobs } from '../rooms/names.js'
import type { GatewayUser } from '../auth/user.js'

export interface RoomAccessOptions {
  /** the host's join rule; default: the room policy (own `user:<id>`, the token's `rooms` claim, `publicRooms`) */
  authorizeJoin?: AuthorizeRoom
  /** the host's publish rule; default: `clientPublishRooms` globs AND the right to join */
  authorizePublish?: AuthorizeRoom
  publicRooms?: readonly string[]
  clientPublishRooms?: readonly string[]
}

export interface RoomAccess {
  canJoin (user: GatewayUser | null, room: string): Promise<boolean>
  canPublish (user: GatewayUser | null, room: string): Promise<boolean>
}

/**
 * Join and publish decisions for socket gateways (ws, rtc). Whatever join rule the host supplies, `user:<id>` is only
 * ever joinable by the user whose id it is: that rule of the protocol is not the host's to relax. A host-supplied
 * `authorizePublish` decides publishing alone (it may allow, say, messages to another user's room).
 */
export function createRoomAccess (options: RoomAccessOptions = {}): RoomAccess {
  const policy = createRoomPolicy({ publicRooms: options.publicRooms, clientPublishRooms: options.clientPublishRooms })
  const canJoin = withUserRoomPrivacy(options.authorizeJoin ?? policy.canJoin)
  const publishGlobs = compileGlobs(options.clientPublishRooms ?? [])
  const publish = options.authorizePublish
  const canPublish = publish === undefined
    ? async (user: GatewayUser | null, room: string) => publishGlobs.matches(room) && await canJoin(user, room)
    : async (user: GatewayUser | null, room: string) => (await publish(user, room)) === true
  return { canJoin, canPublish }
}
