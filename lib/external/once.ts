import type { DedupeStore } from '../stores/dedupe.js'

export interface OnceOptions {
  /** how long a claim holds before another request may take over (a crashed holder) */
  leaseMs: number
  /** how long the outcome is kept */
  ttlMs: number
  /** how long a repeat waits for a claim in flight before giving up */
  waitMs: number
}

export type OnceOutcome =
  /** this call ran `work`; `value` is what it recorded */
  | { kind: 'fresh', value: string }
  /** an earlier call already ran it; `value` is what that call recorded */
  | { kind: 'done', value: string }
  /** another call is still running it after `waitMs` */
  | { kind: 'busy' }

// A repeat that finds the key released (the first attempt failed) claims it again; bounded, in case of a storm.
const MAX_ROUNDS = 5

/**
 * Runs `work` at most once per `key` over a DedupeStore: the first caller claims the key and records what `work`
 * returns; a repeat gets that record; a repeat that arrives while the first is in flight waits for it. When `work`
 * throws, the key is released (a retry runs it again) and the error propagates.
 */
export async function runOnce (store: DedupeStore, key: string, options: OnceOptions,
  work: () => Promise<string>): Promise<OnceOutcome> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const claim = await store.claim(key, options.leaseMs)
    if (claim.state === 'done') return { kind: 'done', value: claim.value }
    if (claim.state === 'claimed') {
      let value: string
      try {
        value = await work()
      } catch (err) {
        await store.release(key).catch(() => {})
        throw err
      }
      await store.complete(key, value, options.ttlMs)
      return { kind: 'fresh', value }
    }
    const waited = await store.wait(key, options.waitMs)
    if (waited.state === 'done') return { kind: 'done', value: waited.value }
    if (waited.state === 'timeout') return { kind: 'busy' }
  }
  return { kind: 'busy' }
}
