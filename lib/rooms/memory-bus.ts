import type { Bus, BusSink } from './bus.js'
import { RoomHistory } from './history.js'
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
  /** for tests: a fixed clock */
  now?: () => number
}

/**
 * The single-instance bus: ids from a process-wide counter under a fresh epoch, history in memory.
 * Forgetting a room's history raises `forgottenSeq`, so a later resume of that room from before the
 * forgotten events is reported as a gap rather than as a complete (empty) recovery.
 */
export class MemoryBus implements Bus {
  readonly name = 'memory'
  readonly epoch = newEpoch()
  private seq = 0
  private forgottenSeq = 0
  private readonly histories = new Map<string, RoomHistory>()
  private readonly historySize: number
  private readonly historyRooms: number
  private readonly historyTtlMs: number
  private readonly now: () => number

  constructor (options: MemoryBusOptions) {
    this.historySize = options.historySize
    this.historyRooms = options.historyRooms ?? 10_000
    this.historyTtlMs = options.historyTtlMs ?? 24 * 60 * 60 * 1000
    this.now = options.now ?? Date.now
  }

  attach (_sink: BusSink): void {
    // a single instance has no remote events to hand over
  }

  append (input: PublishInput): RoomEvent {
    const seq = ++this.seq
    const now = this.now()
    const event = createEvent(formatId(this.epoch, seq), seq, input, now)
    let history = this.histories.get(input.room)
    if (history === undefined) {
      this.sweep()
      if (this.histories.size >= this.historyRooms) this.forgetOldest()
      history = new RoomHistory(this.historySize)
      // this room may have had a history that was forgotten: what came before is unknown
      history.evictedSeq = this.forgottenSeq
    } else {
      // re-insert so Map order stays least-recently-published first
      this.histories.delete(input.room)
    }
    this.histories.set(input.room, history)
    history.push(event, now)
    return event
  }

  history (room: string, sinceId: string): HistoryResult {
    this.sweep()
    const since = parseId(sinceId)
    const history = this.histories.get(room)
    if (since === null || since.epoch !== this.epoch) {
      // from another lifetime: everything retained is newer than it, but what came before is unknown
      return { events: history?.after(0) ?? [], recovered: false }
    }
    if (since.seq > this.seq) return { events: [], recovered: false }
    if (history === undefined) return { events: [], recovered: since.seq >= this.forgottenSeq }
    return {
      events: history.after(since.seq),
      recovered: since.seq >= history.evictedSeq
    }
  }

  isReady (): boolean {
    return true
  }

  async close (): Promise<void> {
    this.histories.clear()
  }

  /** rooms retained, for tests and metrics */
  get historyRoomCount (): number {
    return this.histories.size
  }

  private forgetOldest (): void {
    const first = this.histories.entries().next()
    if (first.done === true) return
    const [room, history] = first.value
    this.forget(room, history)
  }

  private forget (room: string, history: RoomHistory): void {
    this.histories.delete(room)
    if (history.lastSeq > this.forgottenSeq) this.forgottenSeq = history.lastSeq
  }

  private sweep (): void {
    const cutoff = this.now() - this.historyTtlMs
    for (const [room, history] of this.histories) {
      if (history.lastTouched > cutoff) break
      this.forget(room, history)
    }
  }
}
