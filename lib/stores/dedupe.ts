/**
 * Exactly-once bookkeeping for webhooks (Stripe event ids, Standard Webhooks ids) and Idempotency-Key answers.
 *
 * A key is first claimed (in flight, with a lease so a crashed holder does not block it forever), then either
 * completed with a value kept for `ttlMs` (the answer to replay) or released so a retry runs again. A second claim
 * of a key in flight gets `pending` and can `wait` for the outcome. The in-memory store serves one instance; a
 * Redis store implements the same interface across instances.
 */
export type ClaimResult =
  | { state: 'claimed' }
  | { state: 'pending' }
  | { state: 'done', value: string }

export type WaitResult =
  | { state: 'done', value: string }
  | { state: 'released' }
  | { state: 'timeout' }

export interface DedupeStore {
  readonly name: string
  /** claims `key` for `leaseMs` unless it is in flight or done */
  claim (key: string, leaseMs: number): Promise<ClaimResult>
  /** records the outcome of a claimed key, kept for `ttlMs` */
  complete (key: string, value: string, ttlMs: number): Promise<void>
  /** gives a claimed key up (its work failed) so the next claim runs it again */
  release (key: string): Promise<void>
  /** waits until a pending key is completed or released, at most `timeoutMs` */
  wait (key: string, timeoutMs: number): Promise<WaitResult>
  close (): Promise<void>
}

/** Whether `value` implements DedupeStore (for option schemas). */
export function isDedupeStore (value: unknown): value is DedupeStore {
  return ['claim', 'complete', 'release', 'wait', 'close']
    .every((method) => typeof (value as Record<string, unknown> | null)?.[method] === 'function')
}

interface Entry {
  state: 'pending' | 'done'
  value: string
  expires: number
  bytes: number
  waiters: Array<(result: WaitResult) => void>
}

export interface MemoryDedupeStoreOptions {
  /** most keys kept; the oldest are dropped beyond it */
  maxKeys?: number
  /** most bytes of keys and values kept (about two per character, plus the entry); the oldest are dropped beyond it */
  maxBytes?: number
  now?: () => number
}

// what an entry costs beyond its strings: the Map slot, the entry object and its waiter array
const ENTRY_OVERHEAD = 96

export class MemoryDedupeStore implements DedupeStore {
  readonly name = 'memory'
  private readonly entries = new Map<string, Entry>()
  private readonly maxKeys: number
  private readonly maxBytes: number
  private readonly now: () => number
  private used = 0

  constructor (options: MemoryDedupeStoreOptions = {}) {
    this.maxKeys = options.maxKeys ?? 100_000
    this.maxBytes = options.maxBytes ?? 32 * 1024 * 1024
    this.now = options.now ?? Date.now
  }

  async claim (key: string, leaseMs: number): Promise<ClaimResult> {
    const entry = this.live(key)
    if (entry?.state === 'done') return { state: 'done', value: entry.value }
    if (entry?.state === 'pending') return { state: 'pending' }
    this.add(key, { state: 'pending', value: '', expires: this.now() + leaseMs, bytes: 0, waiters: [] })
    return { state: 'claimed' }
  }

  async complete (key: string, value: string, ttlMs: number): Promise<void> {
    const entry = this.entries.get(key)
    const waiters = entry?.waiters ?? []
    this.remove(key)
    this.add(key, { state: 'done', value, expires: this.now() + ttlMs, bytes: 0, waiters: [] })
    for (const wake of waiters) wake({ state: 'done', value })
  }

  async release (key: string): Promise<void> {
    const entry = this.entries.get(key)
    if (entry?.state !== 'pending') return
    this.remove(key)
    for (const wake of entry.waiters) wake({ state: 'released' })
  }

  async wait (key: string, timeoutMs: number): Promise<WaitResult> {
    const entry = this.live(key)
    if (entry === undefined) return { state: 'released' }
    if (entry.state === 'done') return { state: 'done', value: entry.value }
    return await new Promise<WaitResult>((resolve) => {
      const timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== wake)
        resolve({ state: 'timeout' })
      }, timeoutMs)
      const wake = (result: WaitResult) => {
        clearTimeout(timer)
        resolve(result)
      }
      entry.waiters.push(wake)
    })
  }

  async close (): Promise<void> {
    for (const entry of this.entries.values()) for (const wake of entry.waiters) wake({ state: 'timeout' })
    this.entries.clear()
    this.used = 0
  }

  get size (): number {
    return this.entries.size
  }

  /** the bytes the kept keys and values take, as counted against `maxBytes` */
  get bytes (): number {
    return this.used
  }

  private live (key: string): Entry | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= this.now()) {
      this.remove(key)
      for (const wake of entry.waiters) wake({ state: 'released' })
      return undefined
    }
    return entry
  }

  // Map order is insertion order: the first entries are the oldest, and go first when a bound is reached.
  private add (key: string, entry: Entry): void {
    entry.bytes = (key.length + entry.value.length) * 2 + ENTRY_OVERHEAD
    for (const [oldest, dropped] of this.entries) {
      if (this.entries.size < this.maxKeys && this.used + entry.bytes <= this.maxBytes) break
      this.remove(oldest)
      // a dropped claim is as good as released: its waiters may claim it themselves
      for (const wake of dropped.waiters) wake({ state: 'released' })
    }
    this.entries.set(key, entry)
    this.used += entry.bytes
  }

  private remove (key: string): void {
    const entry = this.entries.get(key)
    if (entry === undefined) return
    this.entries.delete(key)
    this.used -= entry.bytes
  }
}
