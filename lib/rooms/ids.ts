import { randomBytes } from 'node:crypto'
import type { StreamPosition } from './types.js'

/**
 * Event ids are opaque to clients. Inside, an id is its event's position in its room: `<epoch>-<offset>`, the epoch
 * of the room's history and the event's offset within it (docs/scale-out.md). Ids strictly increase within a room
 * and epoch; ids of different rooms or epochs are unrelated. An id from another epoch cannot be placed: resume
 * reports a gap instead of guessing.
 *
 * An SSE stream of several rooms sends stream ids: the position of every room of the stream, in the stream's room
 * order, joined by `~` (`<epoch>-<offset>~<epoch>-<offset>`). A stream of one room sends plain event ids.
 */
export type ParsedId = StreamPosition

/** epochs: 1 to 16 characters of a-z0-9; offsets: up to 15 digits (safe integers) */
const ID_PATTERN = /^([a-z0-9]{1,16})-(\d{1,15})$/
/** at most this many positions in a stream id (more than any stream may have rooms) */
export const MAX_STREAM_POSITIONS = 10_000

/**
 * The epoch of a position nothing is known about (a room whose position could not be read): it never equals a real
 * epoch (those have 8 characters or more), so a resume from it reports a gap.
 */
export const UNKNOWN_EPOCH = 'x'

/** A fresh random epoch: 8 characters of base 36 (about 41 bits). */
export function newEpoch (): string {
  return (randomBytes(6).readUIntBE(0, 6) % 2821109907456).toString(36).padStart(8, '0')
}

export function formatId (epoch: string, offset: number): string {
  return `${epoch}-${offset}`
}

export function parseId (id: unknown): ParsedId | null {
  if (typeof id !== 'string') return null
  const match = ID_PATTERN.exec(id)
  if (match === null) return null
  return { epoch: match[1], offset: Number(match[2]) }
}

/** Orders two ids of one room and epoch; ids of different epochs are not comparable and return NaN. */
export function compareIds (a: string, b: string): number {
  const pa = parseId(a)
  const pb = parseId(b)
  if (pa === null || pb === null || pa.epoch !== pb.epoch) return Number.NaN
  return pa.offset - pb.offset
}

/** The id of a stream over several rooms: their positions in the stream's room order (one room: a plain id). */
export function formatStreamId (positions: readonly string[]): string {
  return positions.join('~')
}

/**
 * The resume point of each of `rooms` rooms from a stream id: `null` for a room the id says nothing readable about.
 * A plain id (one position) on a stream of several rooms is offered to every room: only the room whose history has
 * that epoch can place it, the others report a gap. An id that cannot be read at all gives null for every room.
 */
export function parseStreamId (id: string, rooms: number): Array<string | null> {
  const out: Array<string | null> = new Array(rooms).fill(null)
  if (id.length > MAX_STREAM_POSITIONS * 32) return out
  const parts = id.split('~')
  if (parts.length === 1) {
    if (parseId(parts[0]) !== null) out.fill(parts[0])
    return out
  }
  for (let i = 0; i < rooms && i < parts.length; i++) if (parseId(parts[i]) !== null) out[i] = parts[i]
  return out
}
