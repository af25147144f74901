import { compileGlobs } from '../rooms/names.js'
import { userRoomGlobs, type GatewayUser } from './user.js'

export type AuthorizeRoom = (user: GatewayUser | null, room: string) => boolean | Promise<boolean>

export interface RoomPolicyOptions {
  /** globs anyone may join, anonymous included (`PUBLIC_ROOMS`) */
  publicRooms?: readonly string[]
  /** globs clients may publish to (`CLIENT_PUBLISH_ROOMS`); publishing also needs the right to join */
  clientPublishRooms?: readonly string[]
}

export interface RoomPolicy {
  canJoin: AuthorizeRoom
  canPublish: AuthorizeRoom
}

/**
 * The default room rules shared by ws, sse and rtc: `user:<id>` belongs to that user alone, whatever any glob says;
 * then the token's `rooms` claim, then the public globs. Publishing needs the right to join and a publish glob.
 */
export function createRoomPolicy (options: RoomPolicyOptions = {}): RoomPolicy {
  const publicRooms = compileGlobs(options.publicRooms ?? ['public:*'])
  const publishRooms = compileGlobs(options.clientPublishRooms ?? [])
  const canJoin = (user: GatewayUser | null, room: string): boolean => {
    if (room.startsWith('user:')) return user !== null && room === `user:${user.id}`
    if (user !== null && userRoomGlobs(user).matches(room)) return true
    return publicRooms.matches(room)
  }
  return {
    canJoin,
    canPublish: (user, room) => publishRooms.matches(room) && canJoin(user, room)
  }
}
