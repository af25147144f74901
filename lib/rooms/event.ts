import type { Encoder, PublishInput, RoomEvent, StreamPosition } from './types.js'
import { formatId } from './ids.js'
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

const UNPARSED = Symbol('unparsed')

/**
 * A room event. Built from a local publish it holds the publisher's data as given; built from text (an event from
 * another instance, a history record) it parses `dataJson` only when something reads `data` (the transports encode
 * from `dataJson` and never do), so relaying an event costs no parse.
 */
class Event implements RoomEvent {
  readonly id: string
  readonly epoch: string
  readonly offset: number
  readonly room: string
  readonly event: string
  readonly dataJson: string
  readonly time: number
  private value: unknown
  private cache: Map<Encoder<unknown>, unknown> | null = null

  constructor (position: StreamPosition, room: string, event: string, value: unknown, dataJson: string, time: number) {
    this.id = formatId(position.epoch, position.offset)
    this.epoch = position.epoch
    this.offset = position.offset
    this.room = room
    this.event = event
    this.value = value
    this.dataJson = dataJson
    this.time = time
  }

  /** made on first use: an event nobody here receives is never encoded */
  get encoded (): Map<Encoder<unknown>, unknown> {
    return (this.cache ??= new Map())
  }

  get data (): unknown {
    if (this.value === UNPARSED) this.value = JSON.parse(this.dataJson)
    return this.value
  }

  toJSON (): object {
    return { id: this.id, room: this.room, event: this.event, data: this.data, time: this.time }
  }
}

/** An event of a local publish: `data` as given (undefined becomes null), `dataJson` its JSON (computed if absent). */
export function createEvent (position: StreamPosition, input: PublishInput, time: number, dataJson?: string): RoomEvent {
  return new Event(position, input.room, input.event, input.data === undefined ? null : input.data, dataJson ?? encodeData(input.data), time)
}

/** An event rebuilt from text (another instance's publish, a history record); `data` is parsed when first read. */
export function eventFromJson (position: StreamPosition, room: string, event: string, dataJson: string, time: number): RoomEvent {
  return new Event(position, room, event, UNPARSED, dataJson, time)
}
