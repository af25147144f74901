/**
 * The in-memory history of every room of one instance, bounded in events per room, in bytes per room, in bytes in
 * total, in rooms and in time. Everything it holds is counted in bytes (see `stringBytes`, `RECORD_OVERHEAD`,
 * `ROOM_OVERHEAD`), so the heap it keeps alive stays under `maxBytes` whatever publishers do; docs/scale-out.md has
 * the formula.
 *
 * - A record keeps only what a replay needs (ids, names, the data's JSON text, the time), never the publisher's data
 *   object or the frames encoded for live delivery: a replay encodes again.
 * - An event over `maxEventBytes` is not kept (it was delivered live); the room's `evictedOffset` moves past it, so a
 *   resume from before it reports a gap instead of skipping it silently.
 * - Within a room the oldest records go first (count, then bytes); over `maxBytes` the oldest record of ALL rooms
 *   goes first (one list of every record in append order), then, if only room bookkeeping is left, the least
 *   recently published room is forgotten.
 * - A room without a publish for `ttlMs` is forgotten; over `maxRooms`, the least recently published room is.
 *
 * Offsets only need to increase within a room; what they mean (a global sequence, a per-room counter) is the
 * broker's business. A forgotten room is reported to `onForget` so its broker can keep resumes honest.
 */
export interface HistoryLimits {
  /** events kept per room */
  maxEvents: number
  /** bytes kept per room */
  maxRoomBytes: number
  /** a larger event is delivered live but not kept */
  maxEventBytes: number
  /** bytes kept in total, across rooms, bookkeeping included */
  maxBytes: number
  /** rooms with a history */
  maxRooms: number
  /** a room's history is forgotten this long after its last publish */
  ttlMs: number
}

export const HISTORY_DEFAULTS: Readonly<HistoryLimits> = Object.freeze({
  maxEvents: 100,
  maxRoomBytes: 1024 * 1024,
  maxEventBytes: 256 * 1024,
  maxBytes: 64 * 1024 * 1024,
  maxRooms: 10_000,
  ttlMs: 24 * 3600 * 1000
})

/**
 * Heap bytes of one kept record beyond its strings: the record object (ten fields on a 64-bit heap without pointer
 * compression, as Node ships), its heap number for the time, and a share of list bookkeeping. Rounded up.
 */
export const RECORD_OVERHEAD = 192
/** Heap bytes of one room's bookkeeping beyond its name: the log object, its Map entry and a share of the table. */
export const ROOM_OVERHEAD = 256

/**
 * An upper bound of the heap a string takes: V8 keeps text of Latin-1 characters at one byte per character and any
 * other at two, plus a header. Pure ASCII (UTF-8 length equals length) is one byte each; anything else is counted at
 * two, which covers a mostly-ASCII text that one wider character turned into a two-byte string.
 */
export function stringBytes (text: string): number {
  const length = text.length
  return 16 + (Buffer.byteLength(text, 'utf8') === length ? length : 2 * length)
}

/** One kept event: what a replay rebuilds it from. */
export interface HistoryRecord {
  readonly id: string
  readonly offset: number
  readonly event: string
  readonly dataJson: string
  readonly time: number
}

interface StoredRecord extends HistoryRecord {
  readonly log: RoomLog
  readonly bytes: number
  /** neighbours in the list of every record of every room, oldest first */
  prev: StoredRecord | null
  next: StoredRecord | null
  /** the next newer record of the same room */
  newer: StoredRecord | null
}

/** The bookkeeping of one room. `evictedOffset` is the highest offset that is no longer (or never was) kept. */
export class RoomLog {
  lastOffset = 0
  evictedOffset = 0
  lastTouched = 0
  /** the room's own records, oldest first */
  oldest: StoredRecord | null = null
  newest: StoredRecord | null = null
  count = 0
  /** bytes of the room's records */
  bytes = 0
  readonly overhead: number

  constructor (readonly room: string) {
    this.overhead = ROOM_OVERHEAD + stringBytes(room)
  }

  /** Records with an offset above `offset`, oldest first. */
  after (offset: number): HistoryRecord[] {
    const out: HistoryRecord[] = []
    for (let r = this.oldest; r !== null; r = r.newer) if (r.offset > offset) out.push(r)
    return out
  }
}

export class HistoryStore {
  readonly limits: Readonly<HistoryLimits>
  /** rooms, least recently published first */
  private readonly logs = new Map<string, RoomLog>()
  private first: StoredRecord | null = null
  private last: StoredRecord | null = null
  private total = 0
  private records = 0
  private readonly now: () => number
  private readonly onForget: (log: RoomLog) => void

  constructor (limits: Partial<HistoryLimits> = {}, options: { now?: () => number, onForget?: (log: RoomLog) => void } = {}) {
    const merged = { ...HISTORY_DEFAULTS, ...stripUndefined(limits) }
    merged.maxEventBytes = Math.min(merged.maxEventBytes, merged.maxRoomBytes)
    this.limits = Object.freeze(merged)
    this.now = options.now ?? Date.now
    this.onForget = options.onForget ?? (() => {})
  }

  /** bytes counted now (records and room bookkeeping); never above `limits.maxBytes` after an append returns */
  get bytes (): number {
    return this.total
  }

  /** rooms with a history */
  get roomCount (): number {
    return this.logs.size
  }

  /** records kept, across rooms */
  get recordCount (): number {
    return this.records
  }

  /** The log of `room` (expired ones are forgotten first), or undefined. */
  get (room: string): RoomLog | undefined {
    this.sweep()
    return this.logs.get(room)
  }

  /**
   * The log of `room`, created when missing (possibly forgetting the least recently published room to make space).
   * `init` sets up a new log (its broker's position bookkeeping). Moves the room to the most recently used end.
   */
  touch (room: string, init?: (log: RoomLog) => void): RoomLog {
    let log = this.logs.get(room)
    if (log === undefined) {
      this.sweep()
      if (this.logs.size >= this.limits.maxRooms) this.forgetOldestRoom()
      log = new RoomLog(room)
      init?.(log)
      this.total += log.overhead
    } else {
      this.logs.delete(room)
    }
    this.logs.set(room, log)
    log.lastTouched = this.now()
    this.fit(log)
    return log
  }

  /**
   * Appends one event to `log` (from `touch`) at `record.offset`; false when it was too large to keep. Then evicts
   * until every bound holds again.
   */
  append (log: RoomLog, record: HistoryRecord): boolean {
    log.lastOffset = record.offset
    log.lastTouched = this.now()
    const bytes = RECORD_OVERHEAD + stringBytes(record.id) + stringBytes(record.event) + stringBytes(record.dataJson)
    if (this.limits.maxEvents === 0 || bytes > this.limits.maxEventBytes) {
      // delivered live, never replayed: a resume from before it cannot be complete
      log.evictedOffset = record.offset
      return false
    }
    const stored: StoredRecord = {
      id: record.id, offset: record.offset, event: record.event, dataJson: record.dataJson, time: record.time,
      log, bytes, prev: this.last, next: null, newer: null
    }
    if (this.last === null) this.first = stored
    else this.last.next = stored
    this.last = stored
    if (log.newest === null) log.oldest = stored
    else log.newest.newer = stored
    log.newest = stored
    log.count++
    log.bytes += bytes
    this.total += bytes
    this.records++
    while (log.count > this.limits.maxEvents || log.bytes > this.limits.maxRoomBytes) this.evict(log.oldest as StoredRecord)
    this.fit(log)
    return true
  }

  /** Forgets `room`'s history entirely (its broker is told through `onForget`). */
  forget (room: string): void {
    const log = this.logs.get(room)
    if (log !== undefined) this.drop(log)
  }

  clear (): void {
    for (const log of [...this.logs.values()]) this.drop(log)
  }

  /** Evicts the oldest records of every room until the total fits; forgets rooms if bookkeeping alone is over. */
  private fit (keep: RoomLog | null): void {
    while (this.total > this.limits.maxBytes) {
      if (this.first !== null) {
        this.evict(this.first)
        continue
      }
      const oldest = this.logs.values().next().value as RoomLog | undefined
      if (oldest === undefined || oldest === keep) break
      this.drop(oldest)
    }
  }

  /** Removes every record of `log` older than or at `offset` (all of them with Infinity). */
  private dropOldestOf (log: RoomLog, offset: number): void {
    while (log.oldest !== null && log.oldest.offset <= offset) this.evict(log.oldest)
  }

  /** Unlinks the OLDEST record of its room (a room's records leave in order), raising the room's evicted offset. */
  private evict (record: StoredRecord): void {
    const log = record.log
    log.oldest = record.newer
    if (log.oldest === null) log.newest = null
    log.count--
    log.bytes -= record.bytes
    if (record.offset > log.evictedOffset) log.evictedOffset = record.offset
    if (record.prev === null) this.first = record.next
    else record.prev.next = record.next
    if (record.next === null) this.last = record.prev
    else record.next.prev = record.prev
    this.total -= record.bytes
    this.records--
  }

  private drop (log: RoomLog): void {
    this.dropOldestOf(log, Infinity)
    this.logs.delete(log.room)
    this.total -= log.overhead
    this.onForget(log)
  }

  /** only called with at least one room (maxRooms is at least 1) */
  private forgetOldestRoom (): void {
    this.drop(this.logs.values().next().value as RoomLog)
  }

  /** Forgets rooms whose last publish is older than the TTL (the map is in last-publish order). */
  private sweep (): void {
    const cutoff = this.now() - this.limits.ttlMs
    for (const log of this.logs.values()) {
      if (log.lastTouched > cutoff) break
      this.drop(log)
    }
  }
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [key, v] of Object.entries(value)) if (v !== undefined) (out as Record<string, unknown>)[key] = v
  return out
}
