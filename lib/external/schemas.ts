import { z } from 'zod'
import { ROOM_NAME_PATTERN, ROOM_NAME_RULE } from '../rooms/names.js'
import { EVENT_NAME_PATTERN } from '../rooms/event.js'
import { isTooDeep, tooDeepMessage } from '../json.js'

/** The request and answer shapes of the external API; validation and the OpenAPI document both come from these. */
export const RoomName = z.string().regex(ROOM_NAME_PATTERN, `must be ${ROOM_NAME_RULE}`)
  .describe(`a room name: ${ROOM_NAME_RULE}`)

export const PublishBody = z.strictObject({
  event: z.string().regex(EVENT_NAME_PATTERN, 'must be 1 to 128 characters without whitespace or control characters')
    .describe('the event name members receive'),
  data: z.unknown().optional()
    // deep nesting would overflow the stack in what follows (fingerprint, publish): lib/json.ts
    .refine((data) => !isTooDeep(data), { error: tooDeepMessage() })
    .describe('any JSON value; null when absent')
}).describe('an event to publish to the room')

export const PublishAnswer = z.object({
  id: z.string().describe('the event id (the SSE `id:` and ws `id` of the event)'),
  delivered: z.number().int().min(0).describe('members on the receiving instance the event was handed to')
})

export const PresenceAnswer = z.object({
  room: z.string(),
  members: z.number().int().min(0).describe('members of the room over every transport'),
  users: z.array(z.string()).describe('distinct authenticated user ids among them')
})

export const RoomsAnswer = z.object({
  rooms: z.array(z.object({ room: z.string(), members: z.number().int().min(0) }))
    .describe('rooms that have members (limited to the rooms the key may use)')
})

export const HookAnswer = z.object({
  received: z.literal(true),
  duplicate: z.literal(true).optional().describe('present when this webhook-id was already handled: nothing ran')
})

export const Issue = z.object({
  path: z.array(z.union([z.string(), z.number()])),
  code: z.string(),
  message: z.string()
})

export const ErrorAnswer = z.object({
  statusCode: z.number().int(),
  code: z.string().optional().describe('a stable error code, e.g. GW_INVALID_BODY'),
  error: z.string().describe('the HTTP reason phrase'),
  message: z.string(),
  issues: z.array(Issue).optional().describe('every validation problem (400 on an invalid body)')
})

export type IssueAnswer = z.infer<typeof Issue>

/** zod issues as the 400 answer lists them (`issues`); its `message` is `formatIssues` of the same issues. */
export function issueList (issues: readonly z.core.$ZodIssue[]): IssueAnswer[] {
  return issues.map((issue) => ({
    path: issue.path.map((p) => typeof p === 'symbol' ? String(p) : p),
    code: issue.code,
    message: issue.message
  }))
}
