import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import { GatewayErrors } from '../lib/errors.js'
import type { Admission } from '../lib/admission/admission.js'
import { isRoomName } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { DisconnectReason } from '../lib/metrics/counters.js'
import type { SseHub } from '../lib/sse/hub.js'
import { EVENT_STREAM_HEADERS, startEventStream } from '../lib/sse/http.js'
import { SseStream, type SseCloseReason } from '../lib/sse/stream.js'
import { expiresAt } from '../lib/expiry.js'
import { addressOf, admitRequest, corsHeaders, refuseOrigin } from '../plugins/shared/admission.js'

export interface SseRouteOptions {
  path: string
  registry: RoomRegistry
  hub: SseHub
  admission: Admission<FastifyRequest>
  maxRoomsPerStream: number
  retryMs: number
  sendBufferBytes: number
}

/** metrics: the disconnect reason of each way an SSE stream ends */
const SSE_DISCONNECTS: Record<SseCloseReason, DisconnectReason> = {
  client: 'client', overflow: 'slow_consumer', shutdown: 'shutdown', error: 'error', expired: 'unauthenticated'
}

/** Request headers a cross-origin EventSource (or fetch-based SSE client) may send. */
const ALLOWED_REQUEST_HEADERS = 'Authorization, Last-Event-ID, Cache-Control, Accept'
const PREFLIGHT_MAX_AGE_S = '600'

/**
 * `GET <path>?room=a&room=b[&token=..][&lastEventId=..]` opens a stream; `OPTIONS <path>` answers CORS preflights.
 * Every refusal comes before the stream starts, as a JSON error: the admission check first (403 for an Origin outside
 * `allowedOrigins`, 429 past the per-address limit, 401 for a token `authenticate` refuses), then 400 for a missing
 * or invalid room or too many, 403 for a room the join rule refuses.
 */
export async function sseRoutes (app: FastifyInstance, options: SseRouteOptions) {
  const { registry, hub, admission } = options

  app.options(options.path, async function ssePreflight (request, reply) {
    const cors = corsHeaders(admission, request)
    if (request.headers.origin === undefined || cors === null) refuseOrigin('sse', request)
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
    // refusals carry the CORS headers too, so a page's script can read why
    const cors = corsHeaders(admission, request)
    if (cors !== null) reply.headers(cors)
    const user = await admitRequest(admission, 'sse', request, reply)
    const query = (request.query ?? {}) as Record<string, unknown>
    const rooms = parseRooms(query.room, options.maxRoomsPerStream)
    for (const room of rooms) {
      const refused = await admission.join(user, room)
      if (refused !== null) {
        if (refused.kind === 'forbidden' && refused.err !== undefined) request.log.error({ err: refused.err, room }, 'authorizeJoin failed')
        throw new GatewayErrors.SSE_ROOM_FORBIDDEN(JSON.stringify(room))
      }
    }
    const lastEventId = resumePoint(request)
    const ip = addressOf(request)
    if (!admission.acquire(ip)) throw new GatewayErrors.SSE_TOO_MANY_CONNECTIONS(admission.maxConnectionsPerIp)

    reply.hijack()
    const headers = { ...reply.getHeaders(), ...EVENT_STREAM_HEADERS, ...cors } as OutgoingHttpHeaders
    let response: ReturnType<typeof startEventStream>
    try {
      response = startEventStream(reply.raw, headers)
    } catch (err) {
      // e.g. an invalid header value a host hook set: no stream, no slot held
      admission.release(ip)
      reply.raw.destroy()
      throw err
    }
    if (response === null) {
      // the client left while it was being authenticated
      admission.release(ip)
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
      // the stream ends when its token expires (docs/protocol.md, "Extensions")
      expiresAt: expiresAt(user),
      onClose: (reason: SseCloseReason, err?: unknown) => {
        hub.delete(stream)
        admission.release(ip)
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
