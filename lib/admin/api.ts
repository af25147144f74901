import { z } from 'zod'
import { ROOM_NAME_PATTERN, ROOM_NAME_RULE } from '../rooms/names.js'
import { EVENT_NAME_PATTERN } from '../rooms/event.js'
import type { CountersSnapshot } from '../metrics/counters.js'

/**
 * The admin dashboard's JSON API (`<path>/api/...`, docs/operations.md): zod schemas of what it takes, TypeScript
 * types of what it answers. Every route answers 401 `{"statusCode":401,...}` without a valid session.
 */

/** `POST <path>/login`: JSON or form */
export const LoginBody = z.strictObject({
  password: z.string().min(1, { error: 'password is required' }).max(1024, { error: 'password is too long' })
})
export type LoginBody = z.infer<typeof LoginBody>

/** `POST <path>/api/publish` */
export const PublishBody = z.strictObject({
  room: z.string().regex(ROOM_NAME_PATTERN, { error: `room must be ${ROOM_NAME_RULE}` }),
  event: z.string().regex(EVENT_NAME_PATTERN, { error: 'event must be 1 to 128 characters without whitespace' }),
  /** any JSON value; absent: null */
  data: z.json().optional()
})
export type PublishBody = z.infer<typeof PublishBody>

/** `GET <path>/api/rooms?limit=&prefix=` */
export const RoomsQuery = z.strictObject({
  /** rooms listed at most (the largest first) */
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** only rooms whose name starts with this */
  prefix: z.string().max(128).default('')
})
export type RoomsQuery = z.infer<typeof RoomsQuery>

/** `GET <path>/api/session` */
export interface AdminSession {
  /** send it back as `X-CSRF-Token` on `POST <path>/api/...` */
  csrfToken: string
  /** ms since the Unix epoch */
  expiresAt: number
  /** how often the page refreshes, in ms */
  refreshMs: number
  /** this instance's id */
  instanceId: string
}

/** `GET <path>/api/overview`: this instance's numbers (with Redis, every instance has its own) */
export interface AdminOverview {
  instanceId: string
  /** ms since the Unix epoch */
  now: number
  uptimeS: number
  bus: { name: string, up: boolean }
  /** open connections per transport */
  connections: Record<string, number>
  /** rooms with members on this instance */
  localRooms: number
  /** per second, over the last `rates.windowS` seconds */
  rates: { published: number, delivered: number, deliveries: Record<string, number>, windowS: number }
  /** per-second deltas of the last minute, oldest first (for charts) */
  series: { at: number[], published: number[], delivered: number[] }
  /** every counter's total since start */
  totals: CountersSnapshot
  /** live instances of the deployment (member-id prefixes); null with a single-instance bus */
  instances: AdminInstance[] | null
}

export interface AdminInstance {
  id: string
  /** the instance answering this request */
  self: boolean
}

/** `GET <path>/api/rooms`: rooms with members on any instance, the largest first */
export interface AdminRooms {
  /** rooms with members in the deployment (before `limit` and `prefix`) */
  total: number
  rooms: AdminRoom[]
}

export interface AdminRoom {
  room: string
  /** members on every instance */
  members: number
  /** distinct user ids, at most `USERS_LISTED` */
  users: string[]
  /** distinct users in all (anonymous members are not users) */
  usersTotal: number
}

/** `POST <path>/api/publish` */
export interface AdminPublishResult {
  id: string
  /** members on this instance the event was handed to */
  delivered: number
}

/** users listed per room at most */
export const USERS_LISTED = 50
