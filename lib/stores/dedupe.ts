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

interface Entry {
  state: 'pending' | 'done'
  value: string
  expires: number
  waiters: Array<(result: WaitResult) => void>
}

export interface MemoryDedupeStoreOptions {
  /** most keys kept; the oldest are dropped beyond it (bounded memory) */
  maxKeys?: number
  now?: () => number
}

export class MemoryDedupeStore implements DedupeStore {
  readonly name = 'memory'
  private readonly entries = new Map<string, Entry>()
  private readonly maxKeys: number
  private readonly now: () => number

  constructor (options: MemoryDedupeStoreOptions = {}) {
    this.maxKeys = options.maxKeys ?? 100_000
    this.now = options.now ?? Date.now
  }

  async claim (key: string, leaseMs: number): Promise<ClaimResult> {
    const entry = this.live(key)
    if (entry?.state === 'done') return { state: 'done', value: entry.value }
    if (entry?.state === 'pending') return { state: 'pending' }
    this.evictIfFull()
    this.entries.set(key, { state: 'pending', value: '', expires: this.now() + leaseMs, waiters: [] })
    return { state: 'claimed' }
  }

  async complete (key: string, value: string, ttlMs: number): Promise<void> {
    const entry = this.entries.get(key)
    const waiters = entry?.waiters ?? []
    this.entries.delete(key)
    this.evictIfFull()
    this.entries.set(key, { state: 'done', value, expires: this.now() + ttlMs, waiters: [] })
    for (const wake of waiters) wake({ state: 'done', value })
  }

  async release (key: string): Promise<void> {
    const entry = this.entries.get(key)
    if (entry?.state !== 'pending') return
    this.entries.delete(key)
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
  }

  get size (): number {
    return this.entries.size
  }

  private live (key: string): Entry | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= this.now()) {
      this.entries.delete(key)
      for (const wake of entry.waiters) wake({ state: 'released' })
      return undefined
    }
    return entry
  }

  // Map order is insertion order: the first entries are the oldest.
  private evictIfFull (): void {
    while (this.entries.size >= this.maxKeys) {
      const oldest = this.entries.keys().next()
      if (oldest.done === true) return
      this.entries.delete(oldest.value)
    }
  }
}
