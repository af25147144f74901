import type { PublishInput, RoomEvent } from './types.js'
import { GatewayErrors } from '../errors.js'

/** Event names: 1 to 128 characters, no whitespace or control characters (they end up on SSE `event:` lines). */
export const EVENT_NAME_PATTERN = /^[^\s\p{Cc}]{1,128}$/u

export function isEventName (value: unknown): value is string {
  return typeof value === 'string' && EVENT_NAME_PATTERN.test(value)
}

/** JSON of a publish's data, once; undefined becomes null, values JSON cannot carry are refused. */
export function encodeData (data: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(data === undefined ? null : data)
  } catch (err) {
    throw new GatewayErrors.BAD_DATA((err as Error).message)
  }
  if (json === undefined) throw new GatewayErrors.BAD_DATA(`a ${typeof data} is not JSON`)
  return json
}

export function createEvent (id: string, seq: number, input: PublishInput, time: number, dataJson?: string): RoomEvent {
  return {
    id,
    seq,
    room: input.room,
    event: input.event,
    data: input.data === undefined ? null : input.data,
    dataJson: dataJson ?? encodeData(input.data),
    time,
    encoded: new Map()
  }
}
