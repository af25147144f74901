// The library: one plugin per gateway plus the shared room registry. Each gateway is also its own subpath
// (`fastify-gateways/ws`, ...) so a host app loads only what it registers.
export { rooms, ensureRooms, type RoomsOptions } from './plugins/rooms.js'

export * from './lib/rooms/index.js'
export * from './lib/auth/index.js'
export { GatewayErrors } from './lib/errors.js'
export { loggerOptions, redactUrl } from './lib/log.js'
