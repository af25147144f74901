import { compileGlobs } from '../rooms/names.js'
import { userRoomGlobs, type GatewayUser } from './user.js'

/** A join or publish rule: may `user` (null: anonymous) use `room`? */
export type AuthorizeRoom = (user: GatewayUser | null, room: string) => boolean | Promise<boolean>

export interface RoomPolicyOptions {
  /** globs anyone may join, anonymous included (`PUBLIC_ROOMS`); default `public:*` */
  publicRooms?: readonly string[]
  /** globs clients may publish to (`CLIENT_PUBLISH_ROOMS`); publishing also needs the right to join; default none */
  clientPublishRooms?: readonly string[]
}

export interface RoomPolicy {
  canJoin (user: GatewayUser | null, room: string): boolean
  canPublish (user: GatewayUser | null, room: string): boolean
}

/**
 * The built-in room rules shared by ws, sse and rtc: `user:<id>` belongs to that user alone, whatever any glob says;
 * then the token's `rooms` claim, then the public globs. Publishing needs the right to join and a publish glob.
 * A host composes its own rule with it: `authorizeJoin: (user, room) => policy.canJoin(user, room) || mine(user, room)`.
 */
export function createRoomPolicy (options: RoomPolicyOptions = {}): RoomPolicy {
  const publicRooms = compileGlobs(options.publicRooms ?? ['public:*'])
  const publishRooms = compileGlobs(options.clientPublishRooms ?? [])
  const canJoin = (user: GatewayUser | null, room: string): boolean => {
    if (isUserRoom(room)) return isOwnUserRoom(user, room)
    if (user !== null && userRoomGlobs(user).matches(room)) return true
    return publicRooms.matches(room)
  }
  return {
    canJoin,
    canPublish: (user, room) => publishRooms.matches(room) && canJoin(user, room)
  }
}

/** A private `user:<id>` room. */
export function isUserRoom (room: string): boolean {
  return room.startsWith('user:')
}

/** True when `room` is `user:<id>` of this very user. */
export function isOwnUserRoom (user: GatewayUser | null, room: string): boolean {
  return user !== null && room === `user:${user.id}`
}
