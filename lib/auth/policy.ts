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

/** True when `room` is a private `user:<id>` room that `user` does not own. */
export function isOthersUserRoom (user: GatewayUser | null, room: string): boolean {
  return room.startsWith('user:') && (user === null || room !== `user:${user.id}`)
}

/**
 * A host's join rule with the protocol's privacy rule on top: `user:<id>` is only ever joinable by the user whose id
 * it is, whatever the host's rule says. Every transport (ws, sse, rtc) joins through this.
 */
export function withUserRoomPrivacy (authorizeJoin: AuthorizeRoom): (user: GatewayUser | null, room: string) => Promise<boolean> {
  return async (user, room) => !isOthersUserRoom(user, room) && (await authorizeJoin(user, room)) === true
}
