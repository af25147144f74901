import { isRecord } from './errors.js'

/** WebSocket readyState of an open socket. */
export const OPEN = 1

/**
 * What the clients use of a WebSocket: the browser's, or a compatible class passed as `options.WebSocket` (the `ws`
 * package in Node).
 */
export interface SocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export type SocketConstructor = new (url: string) => SocketLike

/** `options.WebSocket`, else the global one; throws when there is none. */
export function socketClass (given: unknown): SocketConstructor {
  const candidate = given ?? globalThis.WebSocket
  if (typeof candidate !== 'function') throw new TypeError('no WebSocket implementation: pass options.WebSocket')
  return candidate as SocketConstructor
}

/** The JSON object a text frame carries, or null (not JSON, not an object). */
export function readFrame (raw: unknown): Record<string, unknown> | null {
  let value: unknown
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : String(raw))
  } catch {
    return null
  }
  return isRecord(value) ? value : null
}

/** A frame's `ref` when it is one the client could have sent (a string or a number). */
export function refOf (frame: Record<string, unknown>): string | number | undefined {
  return typeof frame.ref === 'string' || typeof frame.ref === 'number' ? frame.ref : undefined
}

/** A frame field that must be a string, else undefined. */
export function stringField (frame: Record<string, unknown>, key: string): string | undefined {
  const value = frame[key]
  return typeof value === 'string' ? value : undefined
}
