import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Admission } from '../lib/admission/admission.js'
import { anonymousTurnUser, iceServersFor, type IceServerConfig } from '../lib/rtc/turn.js'
import { admitRequest, corsHeaders, refuseOrigin } from '../plugins/shared/admission.js'

export interface IceServersRouteOptions {
  path: string
  admission: Admission<FastifyRequest>
  ice: IceServerConfig
}

/**
 * `GET /rtc/ice-servers`: the RTCIceServer list for `new RTCPeerConnection({ iceServers })`. STUN as configured; TURN
 * with fresh time-limited credentials whose user part is the caller's user id (anonymous: a random id). The caller
 * passes the same admission check as the signaling socket (Origin 403, `?token=` or Bearer 401; no connection is held,
 * so no per-address count), and the answer is never cached. A cross-origin page listed in `allowedOrigins` may read
 * it (CORS, preflight included).
 */
export async function iceServersRoute (scope: FastifyInstance, options: IceServersRouteOptions) {
  const { admission, ice } = options

  scope.get(options.path, async (request, reply) => {
    const cors = corsHeaders(admission, request)
    if (cors !== null) reply.headers(cors)
    const user = await admitRequest(admission, 'rtc', request, reply, { counted: false })
    reply.header('cache-control', 'no-store')
    return iceServersFor(ice, user?.id ?? anonymousTurnUser())
  })

  // a page of an allowed origin that sends its token as a Bearer header asks first
  scope.options(options.path, async (request, reply) => {
    const cors = corsHeaders(admission, request)
    if (cors === null) refuseOrigin('rtc', request)
    return reply.code(204).headers({
      ...cors,
      'access-control-allow-methods': 'GET',
      'access-control-allow-headers': 'authorization',
      'access-control-max-age': '600'
    }).send()
  })
}
