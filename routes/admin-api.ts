import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayErrors } from '../lib/errors.js'
import { formatIssues } from '../lib/options.js'
import { isRoomName } from '../lib/rooms/names.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import {
  PublishBody, RoomsQuery, USERS_LISTED,
  type AdminInstance, type AdminOverview, type AdminPublishResult, type AdminRoom, type AdminRooms, type AdminSession
} from '../lib/admin/api.js'
import type { AdminSessionRecord } from '../lib/admin/sessions.js'
import type { CountersSampler } from '../lib/admin/sampler.js'

export interface AdminApiRoutesOptions {
  registry: RoomRegistry
  sampler: CountersSampler
  refreshMs: number
  bodyLimit: number
  /** the request's session; throws 401 without one */
  session: (request: FastifyRequest) => AdminSessionRecord
  /** throws 403 unless a change may be made: same origin and the session's CSRF token */
  checkChange: (request: FastifyRequest, session: AdminSessionRecord) => void
}

const started = Date.now()

/**
 * The dashboard's JSON API (docs/operations.md), every route behind the session: `GET /session`, `GET /overview`,
 * `GET /rooms`, `GET /rooms/:room`, `POST /publish`. Anything else under it is 401 without a session, 404 with one.
 */
export async function adminApiRoutes (scope: FastifyInstance, options: AdminApiRoutesOptions) {
  const { registry, sampler } = options
  const sessions = new WeakMap<FastifyRequest, AdminSessionRecord>()
  scope.addHook('onRequest', async (request, reply) => {
    reply.header('cache-control', 'no-store')
    sessions.set(request, options.session(request))
  })
  // the scope's onRequest hook runs first: 401 without a session, this 404 with one
  scope.setNotFoundHandler(async (request, reply) => {
    return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `Route ${request.method}:${request.url} not found` })
  })

  scope.get('/session', async (request): Promise<AdminSession> => {
    const session = sessions.get(request) as AdminSessionRecord
    return { csrfToken: session.csrfToken, expiresAt: session.expiresAt, refreshMs: options.refreshMs, instanceId: registry.instanceId }
  })

  scope.get('/overview', async (): Promise<AdminOverview> => {
    sampler.touch()
    const samples = sampler.series()
    const last = samples[samples.length - 1]
    const series: AdminOverview['series'] = { at: [], published: [], delivered: [] }
    for (let i = 1; i < samples.length; i++) {
      const seconds = (samples[i].at - samples[i - 1].at) / 1000
      series.at.push(samples[i].at)
      series.published.push(rate(samples[i].published - samples[i - 1].published, seconds))
      series.delivered.push(rate(samples[i].delivered - samples[i - 1].delivered, seconds))
    }
    return {
      instanceId: registry.instanceId,
      now: Date.now(),
      uptimeS: Math.round((Date.now() - started) / 1000),
      bus: { name: registry.bus.name, up: registry.isReady() },
      connections: { ...last.counters.connections },
      localRooms: registry.localRoomCount,
      rates: sampler.rates(),
      series,
      totals: last.counters,
      instances: await instances(registry)
    }
  })

  scope.get('/rooms', async (request): Promise<AdminRooms> => {
    const parsed = RoomsQuery.safeParse(request.query ?? {})
    if (!parsed.success) throw new GatewayErrors.ADMIN_BAD_REQUEST(formatIssues(parsed.error.issues, { first: true }))
    const { limit, prefix } = parsed.data
    const all = await registry.list()
    const chosen = all.filter((r) => r.room.startsWith(prefix))
      .sort((a, b) => b.members - a.members || (a.room < b.room ? -1 : 1))
      .slice(0, limit)
    const rooms = await Promise.all(chosen.map(async ({ room }) => await roomOf(registry, room)))
    return { total: all.length, rooms }
  })

  scope.get('/rooms/:room', async (request): Promise<AdminRoom> => {
    const { room } = request.params as { room: string }
    if (!isRoomName(room)) throw new GatewayErrors.INVALID_ROOM(JSON.stringify(room))
    return await roomOf(registry, room)
  })

  scope.post('/publish', { bodyLimit: options.bodyLimit }, async (request): Promise<AdminPublishResult> => {
    options.checkChange(request, sessions.get(request) as AdminSessionRecord)
    const parsed = PublishBody.safeParse(request.body ?? {})
    if (!parsed.success) throw new GatewayErrors.ADMIN_BAD_REQUEST(formatIssues(parsed.error.issues, { first: true }))
    const { room, event, data } = parsed.data
    const result = await registry.publish(room, event, data ?? null)
    request.log.info({ room, event, id: result.id }, 'admin published an event')
    return result
  })
}

function rate (delta: number, seconds: number): number {
  return seconds > 0 ? Math.max(0, delta / seconds) : 0
}

async function roomOf (registry: RoomRegistry, room: string): Promise<AdminRoom> {
  const presence = await registry.presence(room)
  const users = [...presence.users].sort()
  return { room, members: presence.members, users: users.slice(0, USERS_LISTED), usersTotal: users.length }
}

async function instances (registry: RoomRegistry): Promise<AdminInstance[] | null> {
  let live: ReadonlySet<string> | null
  try {
    live = await registry.liveInstances()
  } catch {
    live = null
  }
  if (live === null) return null
  return [...live].sort().map((id) => ({ id, self: id === registry.instanceId }))
}
