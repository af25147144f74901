import type { DedupeStore } from '../stores/dedupe.js'
import { runOnce } from '../stores/once.js'
import type { WebhookOutcome, WebhookProvider } from '../metrics/counters.js'
import { runWithBudget, type LateResult } from './budget.js'

/** Webhook providers retry for days (Stripe for three): a handled delivery id is remembered a little longer. */
export const DEFAULT_DEDUPE_TTL_MS = 4 * 24 * 3600 * 1000
export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000

/** Where outcomes are counted: `app.rooms.counters` (GatewayCounters) in the plugins. */
export interface WebhookCounters {
  webhook (provider: WebhookProvider, outcome: WebhookOutcome): void
}

export interface WebhookPipelineOptions {
  /** the provider the outcomes are counted for */
  provider: WebhookProvider
  /** where delivery ids are claimed and remembered: memory (one instance) or Redis (every instance) */
  store: DedupeStore
  counters?: WebhookCounters
  /** the handlers' (and publish's) time budget per delivery; default 10 s */
  handlerTimeoutMs?: number
  /** how long a handled delivery id is remembered; default 4 days */
  dedupeTtlMs?: number
  /** how long a claim holds if its holder dies before finishing; default handlerTimeoutMs + 10 s */
  leaseMs?: number
  /** how long a concurrent delivery of an id in flight waits for the first one; default leaseMs */
  waitMs?: number
  /** the abort reason handed to the handlers' signal when the budget runs out */
  timeoutReason?: (key: string, budgetMs: number) => Error
}

/** A verified delivery: its dedupe key and what handling it means. */
export interface Delivery {
  /** the delivery id the provider repeats on every retry (event id, webhook-id, val_id, MessageSid + status) */
  key: string
  /** runs the typed handlers; what it returns (a reply to replay, ...) is recorded and handed to repeats */
  handle: (signal: AbortSignal) => Promise<string | undefined | void> | string | undefined | void
  /** publishes the event to its rooms, after the handlers and within the same budget */
  publish?: () => Promise<unknown> | unknown
}

export type DeliveryOutcome =
  /** handled now; `recorded` is false when the store could not record it (a retry would run it again) */
  | { kind: 'handled', value: string, recorded: true }
  | { kind: 'handled', value: string, recorded: false, storeError: unknown }
  /** handled before, or by a concurrent delivery that just finished: nothing ran; `value` is what that one recorded */
  | { kind: 'duplicate', value: string }
  /** a handler (or the publish after them) threw; the id was released so the provider's retry runs it again */
  | { kind: 'failed', stage: 'handler' | 'publish', error: unknown }
  /** the handlers ran past their budget; the id was released at once */
  | { kind: 'timeout', budgetMs: number, late: Promise<LateResult> }
  /** a concurrent delivery held the id and failed (`released`) or did not finish while this one waited */
  | { kind: 'in-flight', result: 'released' | 'timeout' }
  /** the dedupe store failed before anything ran */
  | { kind: 'store-error', error: unknown }

export type PipelineOutcome<E> =
  /** verification refused the delivery (a 4xx error): nothing ran */
  | { kind: 'rejected', error: unknown }
  /** verification could not finish (its error is 5xx: a validation API down, a lookup failing): nothing ran */
  | { kind: 'unavailable', error: unknown }
  | (DeliveryOutcome & { event: E })

const statusOf = (err: unknown): number => {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' ? status : 500
}

const COUNTED: Record<PipelineOutcome<unknown>['kind'], WebhookOutcome> = {
  handled: 'handled',
  duplicate: 'duplicate',
  rejected: 'rejected',
  unavailable: 'failed',
  failed: 'failed',
  timeout: 'failed',
  'in-flight': 'failed',
  'store-error': 'failed'
}

/**
 * The one inbound pipeline every webhook provider runs (stripe, sms, sslcommerz, Standard Webhooks):
 *
 *   verify → claim the delivery id → typed handlers within a time budget → publish → mark done
 *
 * Verification is the provider's (a signature, a hash and a validation API). A delivery whose id is done is a
 * duplicate and runs nothing; one whose id is in flight waits for the first delivery's outcome instead of running
 * twice. A handler that throws or runs past its budget releases the claim, so the provider's retry runs it again;
 * the claim's lease frees it if this process dies. Every outcome is counted once for the provider. No framework:
 * the routes translate outcomes to HTTP.
 */
export class WebhookPipeline {
  readonly provider: WebhookProvider
  readonly handlerTimeoutMs: number
  readonly dedupeTtlMs: number
  readonly leaseMs: number
  readonly waitMs: number
  readonly store: DedupeStore
  private readonly counters: WebhookCounters | undefined
  private readonly timeoutReason: (key: string, budgetMs: number) => Error

  constructor (options: WebhookPipelineOptions) {
    this.provider = options.provider
    this.store = options.store
    this.counters = options.counters
    this.handlerTimeoutMs = options.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS
    this.dedupeTtlMs = options.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS
    this.leaseMs = options.leaseMs ?? this.handlerTimeoutMs + 10_000
    this.waitMs = options.waitMs ?? this.leaseMs
    this.timeoutReason = options.timeoutReason ??
      ((key, budgetMs) => new Error(`the handlers of ${key} ran past their ${budgetMs} ms budget`))
  }

  /**
   * Verifies with `verify` (which throws a coded error to refuse), then delivers what `deliveryOf` makes of the
   * verified event exactly once. The outcome is counted for the provider.
   */
  async process<E> (verify: () => E | Promise<E>, deliveryOf: (event: E) => Delivery): Promise<PipelineOutcome<E>> {
    const outcome = await this.verifyAndDeliver(verify, deliveryOf)
    this.counters?.webhook(this.provider, COUNTED[outcome.kind])
    return outcome
  }

  private async verifyAndDeliver<E> (verify: () => E | Promise<E>, deliveryOf: (event: E) => Delivery): Promise<PipelineOutcome<E>> {
    let event: E
    try {
      event = await verify()
    } catch (error) {
      const status = statusOf(error)
      return status >= 400 && status < 500 ? { kind: 'rejected', error } : { kind: 'unavailable', error }
    }
    return { ...await this.deliver(deliveryOf(event)), event }
  }

  /** Claim, handle within the budget, publish, record; or wait for a concurrent delivery of the same id. */
  async deliver (delivery: Delivery): Promise<DeliveryOutcome> {
    const { key } = delivery
    const budgetMs = this.handlerTimeoutMs
    let stage: 'handler' | 'publish' = 'handler'
    let late: Promise<LateResult> | undefined
    const outcome = await runOnce(this.store, key, { leaseMs: this.leaseMs, ttlMs: this.dedupeTtlMs, waitMs: this.waitMs }, async () => {
      const result = await runWithBudget(async (signal) => {
        const value = await delivery.handle(signal)
        // past the budget the claim is already released and the retry may be running: a late success publishes nothing
        if (signal.aborted) return ''
        stage = 'publish'
        await delivery.publish?.()
        return typeof value === 'string' ? value : ''
      }, budgetMs, () => this.timeoutReason(key, budgetMs))
      if (result.kind === 'ok') return result.value
      if (result.kind === 'timeout') late = result.late
      throw result.kind === 'failed' ? result.error : TIMED_OUT
    })
    switch (outcome.kind) {
      case 'fresh': return outcome.recorded
        ? { kind: 'handled', value: outcome.value, recorded: true }
        : { kind: 'handled', value: outcome.value, recorded: false, storeError: outcome.storeError }
      case 'done': return { kind: 'duplicate', value: outcome.value }
      case 'busy': return { kind: 'in-flight', result: outcome.result }
      case 'store-error': return outcome
      case 'failed': return late !== undefined && outcome.error === TIMED_OUT
        ? { kind: 'timeout', budgetMs, late }
        : { kind: 'failed', stage, error: outcome.error }
    }
  }
}

// what the budgeted work throws when it ran out of time: runOnce releases the claim, deliver reports the timeout
const TIMED_OUT = Symbol('timed out')
