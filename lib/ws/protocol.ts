import { z } from 'zod'
import { ROOM_NAME_PATTERN, ROOM_NAME_RULE } from '../rooms/names.js'
import { EVENT_NAME_PATTERN } from '../rooms/event.js'

/**
 * The frames of the `/ws` protocol (docs/protocol.md), shared by every gateway that speaks it (ws, rtc).
 * Inbound frames are validated with these zod schemas; outbound frames are built by the functions below so the key
 * order (`op` first) and the optional fields are the same everywhere.
 */

/** Error codes of `error` frames. `UNAVAILABLE` is used only when the room bus cannot publish (e.g. Redis down). */
export const ERROR_CODES = [
  'BAD_MESSAGE', 'UNAUTHENTICATED', 'FORBIDDEN', 'RATE_LIMITED', 'TOO_LARGE', 'NOT_FOUND', 'ROOM_FULL', 'UNAVAILABLE'
] as const
export type ErrorCode = typeof ERROR_CODES[number]

/** A client's correlation value: a string (or a number), echoed unchanged on every answer to the frame. */
export const RefSchema = z.union([z.string().max(128), z.number().finite()])
export type Ref = z.infer<typeof RefSchema>

export const RoomSchema = z.string({ error: `room must be a string of ${ROOM_NAME_RULE}` })
  .regex(ROOM_NAME_PATTERN, { error: `invalid room name: expected ${ROOM_NAME_RULE}` })
export const EventNameSchema = z.string({ error: 'event must be a string' })
  .regex(EVENT_NAME_PATTERN, { error: 'invalid event name: expected 1 to 128 characters without whitespace' })

/** Builds the schema of one op: `{ op: <name>, ref?, ...shape }`. Unknown extra keys are ignored. */
export function opSchema<const Op extends string, S extends z.ZodRawShape> (op: Op, shape: S) {
  return z.object({ op: z.literal(op), ref: RefSchema.optional(), ...shape })
}

export const AuthFrame = opSchema('auth', { token: z.string().min(1).max(16_384) })
export const JoinFrame = opSchema('join', {
  room: RoomSchema,
  since: z.string().min(1).max(64).optional(),
  /** true: `joined` carries the room's position (docs/protocol.md, "Positions on join") */
  position: z.boolean().optional()
})
export const LeaveFrame = opSchema('leave', { room: RoomSchema })
export const PublishFrame = opSchema('publish', { room: RoomSchema, event: EventNameSchema, data: z.unknown() })
export const PingFrame = opSchema('ping', {})

export type AuthFrame = z.infer<typeof AuthFrame>
export type JoinFrame = z.infer<typeof JoinFrame>
export type LeaveFrame = z.infer<typeof LeaveFrame>
export type PublishFrame = z.infer<typeof PublishFrame>
export type PingFrame = z.infer<typeof PingFrame>

/** The first look at an inbound frame: a JSON object with a string `op`; its `ref` when it has a usable one. */
export type Envelope =
  | { ok: true, op: string, ref: Ref | undefined, value: Record<string, unknown> }
  | { ok: false, ref: Ref | undefined, message: string }

export function readEnvelope (text: string): Envelope {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, ref: undefined, message: 'a frame must be one JSON object' }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, ref: undefined, message: 'a frame must be one JSON object' }
  }
  const object = value as Record<string, unknown>
  const ref = refOf(object.ref)
  if (typeof object.op !== 'string') return { ok: false, ref, message: 'a frame needs a string "op"' }
  return { ok: true, op: object.op, ref, value: object }
}

/** `RefSchema` by hand: the envelope of every frame reads it, and most frames have none (no zod failure to build). */
function refOf (value: unknown): Ref | undefined {
  if (typeof value === 'string') return value.length <= 128 ? value : undefined
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** The `hello` frame's JSON, written directly (it goes to every connection). */
export function helloJson (conn: string, user: string | null): string {
  return `{"op":"hello","conn":${JSON.stringify(conn)},"user":${user === null ? 'null' : JSON.stringify(user)}}`
}

function withRef<T extends Record<string, unknown>> (frame: T, ref: Ref | undefined): T & { ref?: Ref } {
  if (ref !== undefined) (frame as Record<string, unknown>).ref = ref
  return frame
}

/** Outbound frames other than `event` (which is framed once per publish, see frame.ts). */
export const ServerFrames = {
  hello: (conn: string, user: string | null, ref?: Ref) => withRef({ op: 'hello', conn, user }, ref),
  joined: (room: string, ref?: Ref, recovered?: boolean, position?: string) => {
    const frame: Record<string, unknown> = withRef({ op: 'joined', room }, ref)
    if (recovered !== undefined) frame.recovered = recovered
    if (position !== undefined) frame.position = position
    return frame
  },
  left: (room: string, ref?: Ref) => withRef({ op: 'left', room }, ref),
  ack: (id: string, ref?: Ref) => ref === undefined ? { op: 'ack', id } : { op: 'ack', ref, id },
  pong: (ref?: Ref) => withRef({ op: 'pong' }, ref),
  error: (code: ErrorCode, message: string, ref?: Ref) => withRef({ op: 'error', code, message }, ref)
} as const
