import type { DedupeStore } from './dedupe.js'

export interface OnceOptions {
  /** how long a claim holds before another caller may take over (a crashed holder) */
  leaseMs: number
  /** how long the outcome is kept */
  ttlMs: number
  /** how long a repeat waits for a claim in flight before giving up */
  waitMs: number
  /**
   * How often a repeat whose first attempt failed (the key was released while it waited) claims the key and runs
   * `work` itself. Default 0: it reports `busy` / `released`, and its caller's retry runs it.
   */
  reclaims?: number
}

export type OnceOutcome =
  /** this call ran `work`; `value` is what it returned; `recorded` is false when the store could not keep it */
  | { kind: 'fresh', value: string, recorded: true }
  | { kind: 'fresh', value: string, recorded: false, storeError: unknown }
  /** an earlier call already ran it; `value` is what that call recorded */
  | { kind: 'done', value: string }
  /** `work` threw; the key was released, so the next call runs it again */
  | { kind: 'failed', error: unknown }
  /** another call held the key: it failed while this one waited (`released`), or was still running (`timeout`) */
  | { kind: 'busy', result: 'released' | 'timeout' }
  /** the store failed before `work` ran */
  | { kind: 'store-error', error: unknown }

/**
 * Runs `work` at most once per `key` over a DedupeStore: the one exactly-once step of the webhook pipeline and of
 * Idempotency-Key answers. The first caller claims the key (with a lease, so a crashed holder does not block it
 * forever) and records what `work` returns for `ttlMs`; a repeat gets that record; a repeat that arrives while the
 * first is in flight waits for its outcome instead of running `work` a second time. When `work` throws, the key is
 * released (a failed release leaves it to its lease), so a retry runs it again.
 */
export async function runOnce (store: DedupeStore, key: string, options: OnceOptions,
  work: () => Promise<string>): Promise<OnceOutcome> {
  const rounds = 1 + Math.max(0, options.reclaims ?? 0)
  let waited: 'released' | 'timeout' = 'released'
  for (let round = 0; round < rounds; round++) {
    try {
      const claim = await store.claim(key, options.leaseMs)
      if (claim.state === 'done') return { kind: 'done', value: claim.value }
      if (claim.state === 'pending') {
        const result = await store.wait(key, options.waitMs)
        if (result.state === 'done') return { kind: 'done', value: result.value }
        waited = result.state
        if (waited === 'timeout') break
        continue
      }
    } catch (error) {
      return { kind: 'store-error', error }
    }
    let value: string
    try {
      value = await work()
    } catch (error) {
      await store.release(key).catch(() => {})
      return { kind: 'failed', error }
    }
    try {
      await store.complete(key, value, options.ttlMs)
      return { kind: 'fresh', value, recorded: true }
    } catch (storeError) {
      return { kind: 'fresh', value, recorded: false, storeError }
    }
  }
  return { kind: 'busy', result: waited }
}
