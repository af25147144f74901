import type { RoomEvent } from './types.js'

/**
 * The last `capacity` events of one room, oldest first, in a ring. `evictedSeq` is the highest sequence that has
 * fallen out, which is what decides whether a resume point can still be served exactly.
 */
export class RoomHistory {
  private readonly ring: Array<RoomEvent | undefined>
  private start = 0
  private length = 0
  evictedSeq = 0
  lastSeq = 0
  lastTouched = 0

  constructor (readonly capacity: number) {
    this.ring = new Array(Math.max(capacity, 0))
  }

  get size (): number {
    return this.length
  }

  push (event: RoomEvent, now: number): void {
    this.lastSeq = event.seq
    this.lastTouched = now
    if (this.capacity === 0) {
      this.evictedSeq = event.seq
      return
    }
    if (this.length === this.capacity) {
      const oldest = this.ring[this.start] as RoomEvent
      this.evictedSeq = oldest.seq
      this.ring[this.start] = event
      this.start = (this.start + 1) % this.capacity
    } else {
      this.ring[(this.start + this.length) % this.capacity] = event
      this.length++
    }
  }

  /** Events with a sequence above `seq`, oldest first. */
  after (seq: number): RoomEvent[] {
    const out: RoomEvent[] = []
    for (let i = 0; i < this.length; i++) {
      const event = this.ring[(this.start + i) % this.capacity] as RoomEvent
      if (event.seq > seq) out.push(event)
    }
    return out
  }
}
