import type { Bus, BusSink } from './bus.js'
import { HistoryStore, type HistoryLimits, type HistoryRecord } from './history.js'
import { formatId, newEpoch, parseId } from './ids.js'
import { createEvent } from './event.js'
import type { HistoryResult, PublishInput, RoomEvent } from './types.js'

export interface MemoryBusOptions {
  /** events kept per room for resume */
  historySize: number
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

/**
 * The single-instance bus: ids from a process-wide counter under a fresh epoch, history in memory, bounded in bytes
 * (see `HistoryStore`). Forgetting a room's history raises `forgottenSeq`, so a later resume of that room from
 * before the forgotten events is reported as a gap rather than as a complete (empty) recovery.
 */
export class MemoryBus implements Bus {
  readonly name = 'memory'
  readonly epoch = newEpoch()
  /** the rooms' histories; `store.bytes` is what they hold */
  readonly store: HistoryStore
  private seq = 0
  private forgottenSeq = 0
  private readonly now: () => number

  constructor (options: MemoryBusOptions) {
    const limits: Partial<HistoryLimits> = {
      maxEvents: options.historySize,
      maxRooms: options.historyRooms,
      ttlMs: options.historyTtlMs,
      maxBytes: options.historyMaxBytes,
      maxRoomBytes: options.historyRoomMaxBytes,
      maxEventBytes: options.historyEventMaxBytes
    }
    this.now = options.now ?? Date.now
    this.store = new HistoryStore(limits, {
      now: options.now,
      onForget: (log) => { if (log.lastOffset > this.forgottenSeq) this.forgottenSeq = log.lastOffset }
    })
  }

  attach (_sink: BusSink): void {
    // a single instance has no remote events to hand over
  }

  append (input: PublishInput): RoomEvent {
    const seq = ++this.seq
    const event = createEvent(formatId(this.epoch, seq), seq, input, this.now())
    // this room may have had a history that was forgotten: what came before is unknown
    const log = this.store.touch(input.room, (created) => { created.evictedOffset = this.forgottenSeq })
    this.store.append(log, { id: event.id, offset: seq, event: event.event, dataJson: event.dataJson, time: event.time })
    return event
  }

  history (room: string, sinceId: string): HistoryResult {
    const since = parseId(sinceId)
    const log = this.store.get(room)
    if (since === null || since.epoch !== this.epoch) {
      // from another lifetime: everything retained is newer than it, but what came before is unknown
      return { events: this.replay(room, log?.after(0) ?? []), recovered: false }
    }
    if (since.seq > this.seq) return { events: [], recovered: false }
    if (log === undefined) return { events: [], recovered: since.seq >= this.forgottenSeq }
    return {
      events: this.replay(room, log.after(since.seq)),
      recovered: since.seq >= log.evictedOffset
    }
  }

  isReady (): boolean {
    return true
  }

  async close (): Promise<void> {
    this.store.clear()
  }

  /** rooms retained, for tests and metrics */
  get historyRoomCount (): number {
    return this.store.roomCount
  }

  /** The kept records as events again (data parsed back from its JSON; encoders run again on replay). */
  private replay (room: string, records: HistoryRecord[]): RoomEvent[] {
    return records.map((r) => createEvent(r.id, r.offset, { room, event: r.event, data: JSON.parse(r.dataJson) }, r.time, r.dataJson))
  }
}
