import type { Broker, BrokerHandler, Bus } from './bus.js'
import { HistoryStore, type HistoryLimits, type HistoryRecord, type RoomLog } from './history.js'
import { newEpoch, parseId } from './ids.js'
import { createEvent, encodeData, eventFromJson } from './event.js'
import type { HistoryResult, MaybePromise, PublishInput, RoomEvent, StreamPosition } from './types.js'

export interface MemoryBrokerOptions {
  /** events kept per room for resume */
  historySize?: number
  /** how many rooms keep a history; the least recently published beyond this are forgotten */
  historyRooms?: number
  /** a room's history is forgotten this long after its last publish */
  historyTtlMs?: number
  /** bytes of history kept in total (every room, bookkeeping included); the oldest events go first */
  historyMaxBytes?: number
  /** bytes of history kept per room */
  historyRoomMaxBytes?: number
  /** an event larger than this is delivered but not kept (a resume across it reports a gap) */
  historyEventMaxBytes?: number
  /** for tests: a fixed clock */
  now?: () => number
}

/** the per-room state a log carries besides its records */
interface MemoryLog extends RoomLog {
  epoch: string
}

/**
 * The broker of one process: per-room epochs and offsets, history in memory bounded in bytes (see `HistoryStore`).
 * A room's epoch is born with its log; a forgotten log (TTL, room count, byte budget) takes its epoch with it, so a
 * resume from a forgotten room reports a gap. There is nothing to subscribe to: the registry delivers the events of
 * its own publishes, in order, from `publish`'s answer.
 */
export class MemoryBroker implements Broker {
  readonly name = 'memory'
  /** the rooms' histories; `store.bytes` is what they hold */
  readonly store: HistoryStore
  private readonly now: () => number

  constructor (options: MemoryBrokerOptions = {}) {
    const limits: Partial<HistoryLimits> = {
      maxEvents: options.historySize,
      maxRooms: options.historyRooms,
      ttlMs: options.historyTtlMs,
      maxBytes: options.historyMaxBytes,
      maxRoomBytes: options.historyRoomMaxBytes,
      maxEventBytes: options.historyEventMaxBytes
    }
    this.now = options.now ?? Date.now
    this.store = new HistoryStore(limits, { now: options.now })
  }

  start (_handler: BrokerHandler): void {
    // one process: no other instance hands over events
  }

  publish (input: PublishInput): RoomEvent {
    const dataJson = encodeData(input.data)
    const log = this.log(input.room)
    const event = createEvent({ epoch: log.epoch, offset: log.lastOffset + 1 }, input, this.now(), dataJson)
    this.store.append(log, { id: event.id, offset: event.offset, event: event.event, dataJson, time: event.time })
    return event
  }

  history (room: string, sinceId: string): HistoryResult {
    const since = parseId(sinceId)
    const log = this.store.get(room) as MemoryLog | undefined
    if (log === undefined) return { events: [], recovered: false }
    if (since === null || since.epoch !== log.epoch) {
      // from another lifetime of the room: everything kept is newer than it, but what came before is unknown
      return { events: this.replay(room, log, log.after(0)), recovered: false }
    }
    if (since.offset > log.lastOffset) return { events: [], recovered: false }
    return { events: this.replay(room, log, log.after(since.offset)), recovered: since.offset >= log.evictedOffset }
  }

  position (room: string): StreamPosition {
    const log = this.log(room)
    return { epoch: log.epoch, offset: log.lastOffset }
  }

  subscribe (_room: string): void {}
  unsubscribe (_room: string): void {}

  async close (): Promise<void> {
    this.store.clear()
  }

  /** rooms retained, for tests and metrics */
  get historyRoomCount (): number {
    return this.store.roomCount
  }

  private log (room: string): MemoryLog {
    return this.store.touch(room, (created) => { (created as MemoryLog).epoch = newEpoch() }) as MemoryLog
  }

  /** The kept records as events again (data parsed back from its JSON when read; encoders run again on replay). */
  private replay (room: string, log: MemoryLog, records: HistoryRecord[]): RoomEvent[] {
    return records.map((r) => eventFromJson({ epoch: log.epoch, offset: r.offset }, room, r.event, r.dataJson, r.time))
  }
}

/**
 * The bus of one process: a `MemoryBroker`; presence and direct messages are the registry's own, local ones.
 * `append` and `history` are the broker's publish and history, as methods a subclass may override (a test that
 * fails or delays them); the `broker` the registry uses goes through them.
 */
export class MemoryBus implements Bus {
  readonly name = 'memory'
  /** the broker doing the work (its `store` holds the histories) */
  readonly memory: MemoryBroker
  readonly broker: Broker

  constructor (options: MemoryBrokerOptions = {}) {
    const memory = new MemoryBroker(options)
    this.memory = memory
    this.broker = {
      name: memory.name,
      start: (handler) => { memory.start(handler) },
      publish: (input) => this.append(input),
      history: (room, sinceId) => this.history(room, sinceId),
      position: (room) => memory.position(room),
      subscribe: () => {},
      unsubscribe: () => {},
      close: async () => { await memory.close() }
    }
  }

  /** publishes `input` (the broker's `publish`) */
  append (input: PublishInput): MaybePromise<RoomEvent> {
    return this.memory.publish(input)
  }

  /** the broker's `history` */
  history (room: string, sinceId: string): MaybePromise<HistoryResult> {
    return this.memory.history(room, sinceId)
  }

  failing (): string[] {
    return []
  }

  async close (): Promise<void> {
    await this.memory.close()
  }
}
