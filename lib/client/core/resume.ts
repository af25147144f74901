interface RoomIds {
  lastId: string | null
  seen: Set<string>
  /** the remembered ids in arrival order, a ring of `window` slots */
  ring: string[]
  next: number
}

/**
 * Resume bookkeeping per room: the last event id seen (what a rejoin sends as `since`) and a bounded window of the
 * ids already delivered, so an event replayed after a resume is dropped instead of delivered twice.
 *
 * Event ids are opaque strings (docs/protocol.md): they are compared for equality only, within one room, never
 * parsed or ordered. A room's resume point is the last id seen IN THAT ROOM; an id of another room means nothing to it.
 */
export class ResumeTracker {
  readonly #rooms = new Map<string, RoomIds>()
  /** how many recent ids per room are remembered for dedupe */
  readonly window: number
  /** the id of the most recent event accepted in any room, or null (informational: never a resume point) */
  latest: string | null = null

  constructor (options: { window?: number } = {}) {
    const window = options.window ?? 1024
    if (!Number.isInteger(window) || window < 1) throw new TypeError('dedupeWindow must be a positive integer')
    this.window = window
  }

  /** Records event `id` of `room`; false when it was already delivered (drop it). An event without id is accepted. */
  accept (room: string, id: string | null | undefined): boolean {
    if (typeof id !== 'string' || id === '') return true
    let state = this.#rooms.get(room)
    if (state === undefined) {
      state = { lastId: null, seen: new Set(), ring: [], next: 0 }
      this.#rooms.set(room, state)
    }
    if (state.seen.has(id)) return false
    if (state.ring.length < this.window) {
      state.ring.push(id)
    } else {
      state.seen.delete(state.ring[state.next])
      state.ring[state.next] = id
      state.next = (state.next + 1) % this.window
    }
    state.seen.add(id)
    state.lastId = id
    this.latest = id
    return true
  }

  /** true when `id` of `room` was delivered (within the window) */
  seen (room: string, id: string): boolean {
    return this.#rooms.get(room)?.seen.has(id) ?? false
  }

  /** the last id seen in `room`, or null */
  lastId (room: string): string | null {
    return this.#rooms.get(room)?.lastId ?? null
  }

  /** The resume point of `room`: the last id seen in it, or null (nothing to resume from). */
  since (room: string): string | null {
    return this.lastId(room)
  }

  forget (room: string): void {
    this.#rooms.delete(room)
  }
}
