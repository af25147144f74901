import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { isRoomName } from '../lib/rooms/names.js'
import { GatewayErrors } from '../lib/errors.js'
import type { ApiKey } from '../lib/external/api-keys.js'
import { IDEMPOTENCY_KEY_PATTERN, requestFingerprint, type Idempotency, type StoredAnswer } from '../lib/external/idempotency.js'
import { PublishBody, issueList } from '../lib/external/schemas.js'
import { formatIssues } from '../lib/options.js'

export interface ExternalRoomsRoutesOptions {
  rooms: RoomRegistry
  idempotency: Idempotency
  bodyLimit: number
  /** the API key of a request; throws GW_EXTERNAL_UNAUTHORIZED (401) without a valid one */
  keyOf: (request: FastifyRequest) => ApiKey
}

interface RoomParams { room: string }

/**
 * `POST <base>/rooms/:room/events` (publish), `GET <base>/rooms/:room` (presence), `GET <base>/rooms` (list), all
 * behind an API key. Registered inside the external gateway's scope, after its key lookup and rate limiter.
 */
export async function externalRoomsRoutes (app: FastifyInstance, options: ExternalRoomsRoutesOptions) {
  const { rooms, idempotency, keyOf } = options
  // JSON only: Fastify's text/plain parser would turn a text body into a 400 instead of a 415 (this scope only)
  app.removeContentTypeParser('text/plain')

  // before the body is read: a request without a valid key costs no parsing
  app.addHook('preParsing', async (request, reply) => {
    try {
      keyOf(request)
    } catch (err) {
      reply.header('www-authenticate', 'Bearer')
      throw err
    }
  })

  /** the room of the path, valid and allowed for the request's key */
  function roomOf (request: FastifyRequest<{ Params: RoomParams }>): string {
    const { room } = request.params
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
    const key = keyOf(request)
    if (!key.allows(room)) throw new GatewayErrors.EXTERNAL_FORBIDDEN(key.name, room)
    return room
  }

  app.post<{ Params: RoomParams }>('/rooms/:room/events', { bodyLimit: options.bodyLimit }, async (request, reply) => {
    const room = roomOf(request)
    const parsed = PublishBody.safeParse(request.body)
    if (!parsed.success) {
      const { issues } = parsed.error
      const err = new GatewayErrors.INVALID_BODY(formatIssues(issues, { unknown: 'key' }))
      return await reply.code(400).send({ statusCode: 400, code: err.code, error: 'Bad Request', message: err.message, issues: issueList(issues) })
    }
    const event = parsed.data.event
    const data = parsed.data.data === undefined ? null : parsed.data.data
    const publish = async (): Promise<StoredAnswer> => {
      const { id, delivered } = await rooms.publish(room, event, data)
      return { status: 202, body: { id, delivered } }
    }
    const idempotencyKey = request.headers['idempotency-key']
    if (idempotencyKey === undefined) {
      const answer = await publish()
      return await reply.code(answer.status).send(answer.body)
    }
    if (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(idempotencyKey)) {
      throw new GatewayErrors.INVALID_IDEMPOTENCY_KEY()
    }
    const key = keyOf(request)
    const outcome = await idempotency.run(key.name, idempotencyKey, requestFingerprint(room, { event, data }), publish)
    if (outcome.kind === 'mismatch') throw new GatewayErrors.IDEMPOTENCY_MISMATCH()
    if (outcome.kind === 'in-progress') throw new GatewayErrors.IDEMPOTENCY_IN_PROGRESS()
    if (outcome.kind === 'replay') {
      request.log.info({ room }, 'idempotent repeat: replaying the first answer')
      reply.header('idempotency-replayed', 'true')
    }
    return await reply.code(outcome.answer.status).send(outcome.answer.body)
  })

  app.get<{ Params: RoomParams }>('/rooms/:room', async (request, reply) => {
    const room = roomOf(request)
    const { members, users } = await rooms.presence(room)
    reply.header('cache-control', 'no-store')
    return { room, members, users }
  })

  app.get('/rooms', async (request, reply) => {
    const key = keyOf(request)
    const list = (await rooms.list()).filter((summary) => key.allows(summary.room))
    list.sort((a, b) => a.room < b.room ? -1 : 1) // room names are unique
    reply.header('cache-control', 'no-store')
    return { rooms: list.map(({ room, members }) => ({ room, members })) }
  })
}
