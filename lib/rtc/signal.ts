import { z } from 'zod'
import { RoomSchema, opSchema, type Ref } from '../ws/protocol.js'

/**
 * The frames of the `/rtc` signaling protocol (docs/protocol.md) on top of the `/ws` framing: `join`, `leave` and
 * `signal` in; `joined` (with the peer id and the other peers), `peer-joined`, `peer-left` and `signal` out.
 */

export const SDP_TYPES = ['offer', 'answer', 'pranswer', 'rollback'] as const

/** RTCSessionDescriptionInit: `{ type, sdp }`; `sdp` may be absent only for a rollback. */
const Description = z.object({
  type: z.enum(SDP_TYPES),
  sdp: z.string().optional()
}).refine((d) => d.type === 'rollback' || (typeof d.sdp === 'string' && d.sdp.length > 0), {
  error: 'an offer, answer or pranswer needs an sdp'
})

/** RTCIceCandidateInit: `candidate` is '' for end-of-candidates. */
const Candidate = z.object({
  candidate: z.string(),
  sdpMid: z.string().max(256).nullable().optional(),
  sdpMLineIndex: z.number().int().min(0).max(65_535).nullable().optional(),
  usernameFragment: z.string().max(256).nullable().optional()
})

const SHAPES = 'a session description {type, sdp} or an ICE candidate {candidate, sdpMid?, sdpMLineIndex?, usernameFragment?}' +
  ' (or either wrapped: {description} / {candidate})'

/**
 * The `data` of a `signal` frame, as WebRTC produces it: `pc.localDescription.toJSON()` ({type, sdp}) or
 * `event.candidate.toJSON()` ({candidate, sdpMid, sdpMLineIndex, usernameFragment}); the wrapped forms of the
 * "perfect negotiation" pattern ({description: {...}}, {candidate: {...} | null}) are accepted too. Keys WebRTC does
 * not define are dropped, so only a validated description or candidate is relayed. `maxBytes` bounds its JSON.
 */
export function signalDataSchema (maxBytes: number) {
  return z.union([
    Description,
    Candidate,
    z.object({ description: Description }),
    z.object({ candidate: Candidate.nullable() })
  ], { error: `data must be ${SHAPES}` }).superRefine((data, ctx) => {
    if (Buffer.byteLength(JSON.stringify(data)) > maxBytes) {
      ctx.addIssue({ code: 'custom', message: `data may have at most ${maxBytes} bytes of JSON` })
    }
  })
}

export type SignalData = z.infer<ReturnType<typeof signalDataSchema>>

/** A peer id as the server hands them out (`<instance>.<n>`); anything else is a `to` no peer can have. */
export const PeerIdSchema = z.string({ error: 'to must be a peer id string' }).min(1).max(128)

export const RtcJoinFrame = opSchema('join', { room: RoomSchema })
export const RtcLeaveFrame = opSchema('leave', { room: RoomSchema })
/** `signal` frames; a client's `from` is not part of the schema, so it is dropped: the server sets `from`. */
export function signalFrameSchema (maxBytes: number) {
  return opSchema('signal', { room: RoomSchema, to: PeerIdSchema, data: signalDataSchema(maxBytes) })
}

export type RtcJoinFrame = z.infer<typeof RtcJoinFrame>
export type RtcLeaveFrame = z.infer<typeof RtcLeaveFrame>
export type SignalFrame = z.infer<ReturnType<typeof signalFrameSchema>>

/** Outbound rtc frames (`left`, `error`, `pong` and `hello` are the /ws ones). */
export const RtcFrames = {
  joined: (room: string, peer: string, peers: string[], ref?: Ref) => {
    const frame: Record<string, unknown> = { op: 'joined', room, peer, peers }
    if (ref !== undefined) frame.ref = ref
    return frame
  },
  peerJoined: (room: string, peer: string) => ({ op: 'peer-joined', room, peer }),
  peerLeft: (room: string, peer: string) => ({ op: 'peer-left', room, peer }),
  signal: (room: string, from: string, data: unknown) => ({ op: 'signal', room, from, data })
} as const
