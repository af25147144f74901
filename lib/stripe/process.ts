import type Stripe from 'stripe'
import type { DedupeStore } from '../stores/dedupe.js'
import { dispatchWithBudget, type LateResult } from './dispatch.js'
import type { StripeEventHandlers } from './types.js'

/** Stripe retries a failed delivery for up to three days; a handled id is remembered a little longer. */
export const DEFAULT_DEDUPE_TTL_MS = 4 * 24 * 3600 * 1000
export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000

export interface StripeProcessorOptions<C> {
  store: DedupeStore
  handlers: StripeEventHandlers<C>
  /** the handlers' time budget per delivery; default 10 s */
  handlerTimeoutMs?: number
  /** how long a handled event id is remembered; default 4 days (Stripe retries for 3) */
  dedupeTtlMs?: number
  /** how long a claim holds if its holder dies before finishing; default handlerTimeoutMs + 10 s */
  leaseMs?: number
}

export type ProcessOutcome =
  /** the handlers succeeded; `recorded` is false when the store could not record it (a retry would run again) */
  | { kind: 'handled', recorded: true }
  | { kind: 'handled', recorded: false, storeError: unknown }
  /** the id was handled before (or by a concurrent delivery that just finished): nothing ran */
  | { kind: 'duplicate' }
  /** a handler threw; the id was released so Stripe's retry runs it again */
  | { kind: 'failed', error: unknown }
  /** the handlers ran past their budget; the id was released */
  | { kind: 'timeout', late: Promise<LateResult> }
  /** a concurrent delivery of the same id held it and failed, timed out or did not finish while we waited */
  | { kind: 'in-flight', result: 'released' | 'timeout' }
  /** the dedupe store failed before anything ran */
  | { kind: 'store-error', error: unknown }

/**
 * Exactly-once handling of verified Stripe events over a `DedupeStore`: claim the event id, run its handlers within
 * the budget, then complete (remembered for `dedupeTtlMs`) or release (so the retry runs them again). A concurrent
 * delivery of an id in flight waits for the first one's outcome instead of running the handlers a second time.
 */
export class StripeEventProcessor<C> {
  readonly handlerTimeoutMs: number
  readonly dedupeTtlMs: number
  readonly leaseMs: number
  private readonly store: DedupeStore
  private readonly handlers: StripeEventHandlers<C>

  constructor (options: StripeProcessorOptions<C>) {
    this.store = options.store
    this.handlers = options.handlers
    this.handlerTimeoutMs = options.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS
    this.dedupeTtlMs = options.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS
    this.leaseMs = options.leaseMs ?? this.handlerTimeoutMs + 10_000
  }

  async process (event: Stripe.Event, makeContext: (signal: AbortSignal) => C): Promise<ProcessOutcome> {
    const key = event.id
    let claim
    try {
      claim = await this.store.claim(key, this.leaseMs)
      if (claim.state === 'done') return { kind: 'duplicate' }
      if (claim.state === 'pending') {
        const waited = await this.store.wait(key, this.leaseMs)
        return waited.state === 'done' ? { kind: 'duplicate' } : { kind: 'in-flight', result: waited.state }
      }
    } catch (error) {
      return { kind: 'store-error', error }
    }
    const result = await dispatchWithBudget(this.handlers, event, makeContext, this.handlerTimeoutMs)
    if (result.kind === 'ok') {
      try {
        await this.store.complete(key, event.type, this.dedupeTtlMs)
        return { kind: 'handled', recorded: true }
      } catch (storeError) {
        return { kind: 'handled', recorded: false, storeError }
      }
    }
    // a failed release leaves the claim to its lease: the retry after it runs the handlers again
    await this.store.release(key).catch(() => {})
    return result.kind === 'failed' ? { kind: 'failed', error: result.error } : result
  }
}
