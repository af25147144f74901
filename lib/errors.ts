import createError from '@fastify/error'

/**
 * Every error the gateways throw on purpose, with a stable code. Framework-free: @fastify/error only builds Error
 * classes with `code` and `statusCode`, which Fastify answers with when one escapes a route.
 */
export const GatewayErrors = {
  INVALID_OPTIONS: createError('GW_INVALID_OPTIONS', 'invalid options for %s: %s', 500),
  INVALID_ROOM: createError('GW_INVALID_ROOM', 'invalid room name %s: expected 1 to 128 characters of A-Za-z0-9_.:@-', 400),
  INVALID_EVENT: createError('GW_INVALID_EVENT', 'invalid event name %s: expected 1 to 128 characters without whitespace', 400),
  BAD_DATA: createError('GW_BAD_DATA', 'event data is not JSON: %s', 400),
  BUS_UNAVAILABLE: createError('GW_BUS_UNAVAILABLE', 'the room bus is unavailable: %s', 503),
  CLOSED: createError('GW_CLOSED', 'the room registry is closed', 503),
  CONFIG: createError('GW_CONFIG', '%s', 500)
} as const
