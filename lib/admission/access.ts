import { createRoomPolicy, isOwnUserRoom, isUserRoom, type AuthorizeRoom } from '../auth/policy.js'
import type { GatewayUser } from '../auth/user.js'
import { compileGlobs } from '../rooms/names.js'

export interface RoomAccessOptions {
  /** the host's join rule for every room but `user:<id>` rooms; default: the token's `rooms` claim, then `publicRooms` */
  authorizeJoin?: AuthorizeRoom | undefined
  /** the host's publish rule (it decides alone); default: `clientPublishRooms` globs AND the right to join */
  authorizePublish?: AuthorizeRoom | undefined
  /** globs anyone may join, for the default join rule; default `public:*` */
  publicRooms?: readonly string[]
  /** globs clients may publish to, for the default publish rule; default none */
  clientPublishRooms?: readonly string[]
}

export interface RoomAccess {
  canJoin (user: GatewayUser | null, room: string): Promise<boolean>
  canPublish (user: GatewayUser | null, room: string): Promise<boolean>
}

/**
 * Join and publish decisions of every transport (ws, sse, rtc), composed the same way everywhere:
 *
 * 1. a `user:<id>` room is decided here and nowhere else: the user whose id it is may always join it, nobody else
 *    ever, whatever a host rule says (so a host rule can neither lock users out of their own room nor open another
 *    user's room);
 * 2. every other room: the host's `authorizeJoin` when given, else the built-in rule (the token's `rooms` claim,
 *    then `publicRooms`);
 * 3. publishing: the host's `authorizePublish` decides alone when given (it may, say, let users message each other's
 *    rooms); else the room must match `clientPublishRooms` and be joinable by the publisher.
 *
 * A host that wants the built-in rule plus its own builds it with `createRoomPolicy` and ORs the two.
 */
export function createRoomAccess (options: RoomAccessOptions = {}): RoomAccess {
  const policy = createRoomPolicy({ publicRooms: options.publicRooms, clientPublishRooms: options.clientPublishRooms })
  const rule = options.authorizeJoin ?? policy.canJoin
  const canJoin = async (user: GatewayUser | null, room: string): Promise<boolean> => {
    if (isUserRoom(room)) return isOwnUserRoom(user, room)
    return (await rule(user, room)) === true
  }
  const publishRooms = compileGlobs(options.clientPublishRooms ?? [])
  const publish = options.authorizePublish
  const canPublish = publish === undefined
    ? async (user: GatewayUser | null, room: string) => publishRooms.matches(room) && await canJoin(user, room)
    : async (user: GatewayUser | null, room: string) => (await publish(user, room)) === true
  return { canJoin, canPublish }
}
