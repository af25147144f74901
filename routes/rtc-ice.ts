import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Authenticate, GatewayUser } from '../lib/auth/user.js'
import { createOriginPolicy } from '../lib/auth/origin.js'
import { extractToken } from '../lib/auth/token.js'
import { GatewayErrors } from '../lib/errors.js'
import { anonymousTurnUser, iceServersFor, type IceServerConfig } from '../lib/rtc/turn.js'

export interface IceServersRouteOptions extends IceServerConfig {
  path: string
  authenticate?: Authenticate
  allowedOrigins: readonly string[]
}

/**
 * `GET /rtc/ice-servers`: the RTCIceServer list for `new RTCPeerConnection({ iceServers })`. STUN as configured; TURN
 * with fresh time-limited credentials whose user part is the caller's user id (anonymous: a random id). The caller is
 * authenticated like the socket (`?token=` or Bearer; a refused token is 401) and the answer is never cached.
 * A cross-origin page listed in `allowedOrigins` may read it (CORS, preflight included); another Origin gets 403.
 */
export async function iceServersRoute (scope: FastifyInstance, options: IceServersRouteOptions) {
  const origins = createOriginPolicy(options.allowedOrigins)
  const config: IceServerConfig = {
    stunUrls: options.stunUrls,
    turnUrls: options.turnUrls,
    ...(options.turnSecret === undefined ? {} : { turnSecret: options.turnSecret }),
    turnTtlS: options.turnTtlS
  }

  const cors = (request: FastifyRequest, reply: FastifyReply): void => {
    const origin = request.headers.origin
    if (!origins.allowed(origin, request.headers.host)) {
      request.log.info({ origin }, 'ice servers refused: origin not allowed')
      throw new GatewayErrors.RTC_ORIGIN_FORBIDDEN(JSON.stringify(origin))
    }
    const value = origins.corsValue(origin, request.headers.host)
    if (value !== null) {
      reply.header('access-control-allow-origin', value)
      if (value !== '*') reply.header('vary', 'Origin')
    }
  }

  scope.get(options.path, async (request, reply) => {
    cors(request, reply)
    const user = await authenticate(options.authenticate, request, reply)
    reply.header('cache-control', 'no-store')
    return iceServersFor(config, user?.id ?? anonymousTurnUser())
  })

  // a page of an allowed origin that sends its token as a Bearer header asks first
  scope.options(options.path, async (request, reply) => {
    cors(request, reply)
    reply.header('access-control-allow-methods', 'GET')
    reply.header('access-control-allow-headers', 'authorization')
    reply.header('access-control-max-age', '600')
    reply.code(204).send()
  })
}

async function authenticate (fn: Authenticate | undefined, request: FastifyRequest, reply: FastifyReply): Promise<GatewayUser | null> {
  if (fn === undefined) return null
  const token = extractToken(request.query, request.headers.authorization)
  let user: GatewayUser | null
  try {
    user = await fn(token, request)
  } catch (err) {
    reply.header('www-authenticate', 'Bearer')
    const e = err as { statusCode?: number, message?: unknown }
    const reason = e?.statusCode === 401 && typeof e.message === 'string' ? e.message : 'invalid token'
    request.log.info({ reason }, 'ice servers refused: authentication failed')
    throw new GatewayErrors.RTC_UNAUTHENTICATED(reason)
  }
  if (token !== null && user === null) {
    reply.header('www-authenticate', 'Bearer')
    throw new GatewayErrors.RTC_UNAUTHENTICATED('no user for this token')
  }
  return user
}
