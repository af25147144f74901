import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import { GatewayErrors } from '../lib/errors.js'
import { AuthError } from '../lib/auth/jwt.js'
import { extractToken } from '../lib/auth/token.js'
import type { OriginPolicy } from '../lib/auth/origin.js'
import type { AuthorizeRoom } from '../lib/auth/policy.js'
import type { Authenticate, GatewayUser } from '../lib/auth/user.js'
import type { IpCounter } from '../lib/limits/ip-counter.js'
import { isRoomName } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { SseHub } from '../lib/sse/hub.js'
import { EVENT_STREAM_HEADERS, startEventStream } from '../lib/sse/http.js'
import { SseStream, type SseCloseReason } from '../lib/sse/stream.js'

export interface SseRouteOptions {
  path: string
  registry: RoomRegistry
  hub: SseHub
  authenticate: Authenticate | undefined
  authorizeJoin: AuthorizeRoom
  origins: OriginPolicy
  ipCounter: IpCounter
  maxConnectionsPerIp: number
  maxRoomsPerStream: number
  retryMs: number
  sendBufferBytes: number
}

/** metrics: the disconnect reason of each way an SSE stream ends */
const SSE_DISCONNECTS = { client: 'client', overflow: 'slow_consumer', shutdown: 'shutdown', error: 'error' } as const

/** Request headers a cross-origin EventSource (or fetch-based SSE client) may send. */
const ALLOWED_REQUEST_HEADERS = 'Authorization, Last-Event-ID, Cache-Control, Accept'
const PREFLIGHT_MAX_AGE_S = '600'

/**
 * `GET <path>?room=a&room=b[&token=..][&lastEventId=..]` opens a stream; `OPTIONS <path>` answers CORS preflights.
 * Every refusal comes before the stream starts, as a JSON error: 403 for an Origin outside `allowedOrigins`,
 * 429 past the per-address limit, 401 for a token `authenticate` refuses, 400 for a missing or invalid room or too
 * many, 403 for a room `authorizeJoin` refuses.
 */
export async function sseRoutes (app: FastifyInstance, options: SseRouteOptions) {
  const { registry, hub, origins, ipCounter } = options

  app.options(options.path, async function ssePreflight (request, reply) {
    const origin = request.headers.origin
    const cors = corsHeaders(origins, origin, request.headers.host)
    if (origin === undefined || cors === null) throw new GatewayErrors.SSE_ORIGIN_FORBIDDEN(JSON.stringify(origin ?? null))
    return reply.code(204).headers({
      ...cors,
      'access-control-allow-methods': 'GET, OPTIONS',
      'access-control-allow-headers': ALLOWED_REQUEST_HEADERS,
      'access-control-max-age': PREFLIGHT_MAX_AGE_S,
      vary: 'Origin, Access-Control-Request-Headers'
    }).send()
  })

  // no automatic HEAD route: a HEAD answer has no body, and this handler starts one
  app.get(options.path, { exposeHeadRoute: false }, async function sseStream (request, reply) {
    const origin = request.headers.origin
    const cors = corsHeaders(origins, origin, request.headers.host)
    if (cors === null) throw new GatewayErrors.SSE_ORIGIN_FORBIDDEN(JSON.stringify(origin))
    // refusals below carry the CORS headers too, so a page's script can read why
    reply.headers(cors)

    const ip = request.ip
    if (ipCounter.count(ip) >= options.maxConnectionsPerIp) {
      throw new GatewayErrors.SSE_TOO_MANY_CONNECTIONS(options.maxConnectionsPerIp)
    }
    const query = (request.query ?? {}) as Record<string, unknown>
    const user = await authenticate(options.authenticate, request, reply, query)
    const rooms = parseRooms(query.room, options.maxRoomsPerStream)
    for (const room of rooms) {
      if (!await options.authorizeJoin(user, room)) throw new GatewayErrors.SSE_ROOM_FORBIDDEN(JSON.stringify(room))
    }
    const lastEventId = resumePoint(request)
    if (!ipCounter.acquire(ip)) throw new GatewayErrors.SSE_TOO_MANY_CONNECTIONS(options.maxConnectionsPerIp)

    reply.hijack()
    const headers = { ...reply.getHeaders(), ...EVENT_STREAM_HEADERS, ...cors } as OutgoingHttpHeaders
    let response: ReturnType<typeof startEventStream>
    try {
      response = startEventStream(reply.raw, headers)
    } catch (err) {
      // e.g. an invalid header value a host hook set: no stream, no slot held
      ipCounter.release(ip)
      reply.raw.destroy()
      throw err
    }
    if (response === null) {
      // the client left while it was being authenticated
      ipCounter.release(ip)
      return
    }
    const opened = Date.now()
    const log = request.log
    registry.counters.connectionOpened('sse')
    const stream: SseStream = new SseStream({
      id: registry.nextMemberId(),
      user: user?.id ?? null,
      rooms,
      registry,
      target: response.target,
      sendBufferBytes: options.sendBufferBytes,
      retryMs: options.retryMs,
      end: response.end,
      onClose: (reason: SseCloseReason, err?: unknown) => {
        hub.delete(stream)
        ipCounter.release(ip)
        registry.counters.connectionClosed('sse', SSE_DISCONNECTS[reason])
        const fields = { stream: stream.id, reason, ms: Date.now() - opened }
        if (reason === 'overflow') log.warn({ ...fields, sendBufferBytes: options.sendBufferBytes }, 'sse stream ended: the client does not read fast enough')
        else if (reason === 'error') log.warn({ ...fields, err }, 'sse stream ended: resume failed')
        else log.debug(fields, 'sse stream closed')
      }
    })
    response.onClose(() => { stream.close('client') })
    hub.add(stream)
    log.debug({ stream: stream.id, rooms, user: stream.user, resume: lastEventId !== null }, 'sse stream opened')
    await stream.open(lastEventId)
  })
}

/** CORS response headers for `origin`, `{}` for a request without Origin, null for an Origin that is not allowed. */
function corsHeaders (origins: OriginPolicy, origin: string | undefined, host: string | undefined): Record<string, string> | null {
  if (origin === undefined) return {}
  if (!origins.allowed(origin, host)) return null
  const value = origins.corsValue(origin, host) as string
  // a specific echoed origin may send credentials (cookies, EventSource withCredentials); `*` never can
  return value === '*'
    ? { 'access-control-allow-origin': '*' }
    : { 'access-control-allow-origin': value, 'access-control-allow-credentials': 'true', vary: 'Origin' }
}

async function authenticate (fn: Authenticate | undefined, request: FastifyRequest, reply: FastifyReply, query: Record<string, unknown>): Promise<GatewayUser | null> {
  if (fn === undefined) return null
  const token = extractToken(query, request.headers.authorization)
  try {
    return await fn(token, request)
  } catch (err) {
    reply.header('www-authenticate', 'Bearer')
    throw new GatewayErrors.SSE_UNAUTHENTICATED(err instanceof AuthError ? err.message : 'authentication failed')
  }
}

/** `?room=a&room=b`, distinct, each a valid room name, at most `max`. */
function parseRooms (value: unknown, max: number): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value]
  if (list.length === 0) throw new GatewayErrors.SSE_NO_ROOM()
  const rooms = [...new Set(list)]
  if (rooms.length > max) throw new GatewayErrors.SSE_TOO_MANY_ROOMS(max)
  for (const room of rooms) {
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
  }
  return rooms as string[]
}

/**
 * The resume point: the `Last-Event-ID` header a browser sends when it reconnects, else `?lastEventId=` (for a first
 * connection that resumes from a stored id). The header wins: the query string of an EventSource's URL never
 * changes, so on a reconnect it is stale.
 */
function resumePoint (request: FastifyRequest): string | null {
  const header = request.headers['last-event-id']
  if (typeof header === 'string' && header.trim() !== '') return header.trim()
  const query = (request.query as Record<string, unknown> | undefined)?.lastEventId
  const value = Array.isArray(query) ? query[query.length - 1] : query
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null
}
