export type { GatewayUser, Authenticate } from './user.js'
export { createJwtAuthenticator, AuthError, MIN_JWT_SECRET_BYTES, type JwtAuthenticatorOptions } from './jwt.js'
export { createRoomPolicy, isUserRoom, isOwnUserRoom, type RoomPolicy, type RoomPolicyOptions, type AuthorizeRoom } from './policy.js'
