import { randomBytes } from 'node:crypto'

/**
 * Event ids are opaque to clients: `<epoch>-<seq>`. The epoch names one lifetime of the id source (a process with
 * the in-memory bus, a Redis keyspace with the Redis bus); `seq` increases strictly within it across all rooms, so
 * one SSE stream of several rooms sees increasing ids. An id from another epoch cannot be placed: resume reports a
 * gap instead of guessing.
 */
export interface ParsedId {
  epoch: string
  seq: number
}

const ID_PATTERN = /^([a-z0-9]{1,32})-(\d{1,15})$/

export function newEpoch (): string {
  return Date.now().toString(36) + randomBytes(3).toString('hex')
}

export function formatId (epoch: string, seq: number): string {
  return `${epoch}-${seq}`
}

export function parseId (id: unknown): ParsedId | null {
  if (typeof id !== 'string') return null
  const match = ID_PATTERN.exec(id)
  if (match === null) return null
  const seq = Number(match[2])
  if (!Number.isSafeInteger(seq)) return null
  return { epoch: match[1], seq }
}

/** Orders two ids of one epoch; ids of different epochs are not comparable and return NaN. */
export function compareIds (a: string, b: string): number {
  const pa = parseId(a)
  const pb = parseId(b)
  if (pa === null || pb === null || pa.epoch !== pb.epoch) return Number.NaN
  return pa.seq - pb.seq
}
