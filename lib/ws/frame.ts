import * as ws from 'ws'
import type { Encoder, RoomEvent } from '../rooms/types.js'

interface FrameOptions { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }
/** ws's public `Sender.frame` (exported by ws, absent from @types/ws) */
const Sender = (ws as unknown as { Sender: { frame (data: Buffer, options: FrameOptions): Buffer[] } }).Sender

/**
 * Frame-once fan-out. An event is serialised once (`dataJson` is computed at publish) and framed once: the result is
 * one Buffer holding a complete, unmasked, uncompressed WebSocket text frame, written as is to every member's socket.
 * `payload` is a view of the same bytes without the frame header, for a socket that cannot take raw frames (one that
 * negotiated permessage-deflate) and goes through `ws.send` instead.
 */
export interface WireFrame {
  /** header + payload: one complete server-to-client text frame */
  readonly frame: Buffer
  /** the JSON text of the frame, as UTF-8 bytes (a view into `frame`) */
  readonly payload: Buffer
}

/** One complete unmasked text frame (FIN set, opcode 1, no RSV bits) for `text`, built by ws's own `Sender.frame`. */
export function textFrame (text: string): WireFrame {
  const payload = Buffer.from(text, 'utf8')
  const [header] = Sender.frame(payload, { fin: true, opcode: 0x01, mask: false, readOnly: true, rsv1: false })
  const frame = Buffer.allocUnsafe(header.length + payload.length)
  header.copy(frame, 0)
  payload.copy(frame, header.length)
  return { frame, payload: frame.subarray(header.length) }
}

/** The JSON of an `event` frame: `{"op":"event","room","event","data","id"}` around the event's `dataJson`. */
export function eventJson (event: RoomEvent): string {
  return `{"op":"event","room":${JSON.stringify(event.room)},"event":${JSON.stringify(event.event)},"data":${event.dataJson},"id":${JSON.stringify(event.id)}}`
}

/**
 * The encoder of `event` frames. ONE instance for every transport that speaks this protocol (ws and rtc members share
 * it), so the registry encodes and frames each event once for all of them; history replay reuses the cached frame.
 */
export const wsEventEncoder: Encoder<WireFrame> = {
  name: 'ws-frame',
  encode: (event) => textFrame(eventJson(event))
}
