import type { GatewayUser } from './auth/user.js'

/**
 * Credential expiry of open connections (docs/security.md, "Tokens that expire"; docs/protocol.md, "Extensions"),
 * without a timer per connection: one shared wheel of one-second slots, swept by ONE timer that runs only while
 * something is scheduled. Scheduling and cancelling are O(1); a sweep costs the entries that are due, nothing else.
 */

/** Something with a deadline: `due(now)` runs at (or up to one tick after) its time and returns its next one, or null. */
export interface Expiring {
  due (now: number): number | null
}

export interface ExpiryWheelOptions {
  /** slot width and sweep interval, ms; default 1000 */
  tickMs?: number
  now?: () => number
}

export class ExpiryWheel {
  private readonly slots = new Map<number, Set<Expiring>>()
  private readonly slotOf = new Map<Expiring, number>()
  private readonly tickMs: number
  private readonly now: () => number
  private timer: NodeJS.Timeout | null = null
  /** the next slot the sweep looks at */
  private cursor = 0
  private sweepWaiters: Array<{ at: number, resolve: () => void }> = []

  constructor (options: ExpiryWheelOptions = {}) {
    this.tickMs = options.tickMs ?? 1000
    this.now = options.now ?? Date.now
  }

  /** entries scheduled (tests, metrics) */
  get size (): number {
    return this.slotOf.size
  }

  /** true while the sweep timer exists (leak checks) */
  get running (): boolean {
    return this.timer !== null
  }

  /** Runs `item.due` at `at` (ms since the epoch) or at the first sweep after it; replaces an earlier schedule. */
  schedule (item: Expiring, at: number): void {
    this.cancel(item)
    this.start()
    const slot = Math.max(Math.ceil(at / this.tickMs), this.cursor)
    let set = this.slots.get(slot)
    if (set === undefined) {
      set = new Set()
      this.slots.set(slot, set)
    }
    set.add(item)
    this.slotOf.set(item, slot)
  }

  cancel (item: Expiring): void {
    const slot = this.slotOf.get(item)
    if (slot === undefined) return
    this.slotOf.delete(item)
    const set = this.slots.get(slot) as Set<Expiring>
    set.delete(item)
    if (set.size === 0) this.slots.delete(slot)
    if (this.slotOf.size === 0) this.stop()
  }

  /** Resolves after the first sweep that runs at or after `at` (tests: "the deadline has been looked at"). */
  async sweptAfter (at: number): Promise<void> {
    this.start()
    await new Promise<void>((resolve) => { this.sweepWaiters.push({ at, resolve }) })
  }

  /** One sweep: every entry whose slot has come, in slot order. Called by the timer. */
  sweep (): void {
    const now = this.now()
    const last = Math.floor(now / this.tickMs)
    while (this.cursor <= last && this.slotOf.size > 0) {
      const slot = this.cursor++
      const set = this.slots.get(slot)
      if (set === undefined) continue
      this.slots.delete(slot)
      for (const item of set) {
        this.slotOf.delete(item)
        let next: number | null = null
        try {
          next = item.due(now)
        } catch {
          // an entry's failure is its own (it logs); the others still run
        }
        if (next !== null) this.schedule(item, next)
      }
    }
    this.cursor = Math.max(this.cursor, last + 1)
    if (this.sweepWaiters.length > 0) {
      const ready = this.sweepWaiters.filter((w) => w.at <= now)
      this.sweepWaiters = this.sweepWaiters.filter((w) => w.at > now)
      for (const waiter of ready) waiter.resolve()
    }
    if (this.slotOf.size === 0) this.stop()
  }

  private start (): void {
    if (this.timer !== null) return
    this.cursor = Math.floor(this.now() / this.tickMs)
    this.timer = setInterval(() => { this.sweep() }, this.tickMs)
    this.timer.unref()
  }

  private stop (): void {
    if (this.timer !== null && this.sweepWaiters.length === 0) {
      clearInterval(this.timer)
      this.timer = null
    }
  }
}

/** The one wheel of the process, shared by every ws/rtc connection and SSE stream. */
export const expiryWheel = new ExpiryWheel()

/** When `user`'s credential expires, ms since the epoch: its `exp` claim (seconds, as in a JWT); null without one. */
export function expiresAt (user: GatewayUser | null): number | null {
  const exp = user?.claims?.exp
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null
}

/** How long before expiry a ws/rtc client is asked to refresh: 30 s, or half the remaining life when shorter. */
export function refreshAt (expiry: number, now: number): number {
  return expiry - Math.min(30_000, Math.max((expiry - now) / 2, 0))
}
