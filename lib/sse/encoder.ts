import type { Encoder, RoomEvent } from '../rooms/types.js'

/**
 * The SSE wire form of a room event (docs/protocol.md), built once per publish around the event's `dataJson`:
 *
 *     id: <id>
 *     event: <event>
 *     data: {"room":"<room>","data":<json>}
 *
 * No field can break the framing: ids are `<epoch>-<seq>`, event names carry no whitespace or control characters,
 * room names are `A-Za-z0-9_.:@-`, and JSON.stringify escapes CR and LF inside strings (its output has no raw line
 * breaks), so every event is exactly three lines and a blank one.
 */
export function encodeSseEvent (event: RoomEvent): Buffer {
  return Buffer.from(`id: ${event.id}\nevent: ${event.event}\ndata: {"room":${JSON.stringify(event.room)},"data":${event.dataJson}}\n\n`)
}

/**
 * The one SSE encoder of the process. Every SSE member of every registry uses this instance, so the registry encodes
 * each event once for all of them and the history replay reuses the same bytes (`RoomEvent.encoded` is keyed by it).
 */
export const sseEncoder: Encoder<Buffer> = Object.freeze({ name: 'sse', encode: encodeSseEvent })

/** `retry: <ms>`: how long a browser waits before it reconnects. Sent first on every stream. */
export function encodeRetry (ms: number): Buffer {
  return Buffer.from(`retry: ${Math.max(0, Math.floor(ms))}\n\n`)
}

/** `event: gap` for a room whose history no longer reaches back to the client's Last-Event-ID. No `id:` line, so the
 * browser's last event id stays where it was. */
export function encodeGap (room: string): Buffer {
  return Buffer.from(`event: gap\ndata: {"room":${JSON.stringify(room)}}\n\n`)
}

/** The heartbeat comment, one shared buffer. */
export const PING: Buffer = Buffer.from(': ping\n\n')
