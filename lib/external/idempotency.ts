import { createHash } from 'node:crypto'
import type { DedupeStore } from '../stores/dedupe.js'
import { runOnce } from '../stores/once.js'

/** An Idempotency-Key: 1 to 255 visible ASCII characters (what Stripe and the IETF draft allow in practice). */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/

export interface IdempotencyOptions {
  /** how long an answer is replayed; default 24 h */
  ttlMs?: number
  /** how long a repeat waits for the first request still in flight; default 10 s */
  waitMs?: number
  /** how long a claim holds if its request never finishes (a crash); default 60 s */
  leaseMs?: number
}

/** The answer of a request, as stored and replayed. */
export interface StoredAnswer {
  status: number
  body: unknown
}

export type IdempotentOutcome =
  | { kind: 'fresh', answer: StoredAnswer }
  | { kind: 'replay', answer: StoredAnswer }
  /** the key was used before for a different request */
  | { kind: 'mismatch' }
  /** the first request with this key is still running after the wait */
  | { kind: 'in-progress' }

interface Saved {
  fingerprint: string
  status: number
  body: unknown
}

/**
 * Idempotency-Key handling over a DedupeStore: the first answer for (scope, key) is stored and replayed for a
 * repeat with the same request; a repeat with another request (a different fingerprint) is refused; a concurrent
 * repeat waits for the first. `scope` separates callers (the API key name) so one caller cannot replay another's.
 */
export class Idempotency {
  readonly store: DedupeStore
  private readonly ttlMs: number
  private readonly waitMs: number
  private readonly leaseMs: number

  constructor (store: DedupeStore, options: IdempotencyOptions = {}) {
    this.store = store
    this.ttlMs = options.ttlMs ?? 24 * 3600 * 1000
    this.waitMs = options.waitMs ?? 10_000
    this.leaseMs = options.leaseMs ?? 60_000
  }

  async run (scope: string, key: string, fingerprint: string, work: () => Promise<StoredAnswer>): Promise<IdempotentOutcome> {
    let answer: StoredAnswer | undefined
    // a repeat whose first request failed runs it itself (bounded, in case of a storm)
    const outcome = await runOnce(this.store, `${scope}:${key}`, { leaseMs: this.leaseMs, ttlMs: this.ttlMs, waitMs: this.waitMs, reclaims: 4 }, async () => {
      answer = await work()
      const record: Saved = { fingerprint, status: answer.status, body: answer.body }
      return JSON.stringify(record)
    })
    if (outcome.kind === 'failed' || outcome.kind === 'store-error') throw outcome.error
    if (outcome.kind === 'busy') return { kind: 'in-progress' }
    // not recorded (the store failed after the work): the answer stands; a repeat would run the work again
    if (outcome.kind === 'fresh') return { kind: 'fresh', answer: answer as StoredAnswer }
    const record = JSON.parse(outcome.value) as Saved
    if (record.fingerprint !== fingerprint) return { kind: 'mismatch' }
    return { kind: 'replay', answer: { status: record.status, body: record.body } }
  }
}

/** JSON with object keys sorted at every level: equal values give equal text whatever the key order. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item === undefined ? null : item)).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as { [k: string]: unknown })[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as { [k: string]: unknown })[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** What makes two requests "the same" for an Idempotency-Key: the target and the body, key order aside. */
export function requestFingerprint (target: string, body: unknown): string {
  return createHash('sha256').update(target).update('\n').update(canonicalJson(body)).digest('base64url')
}
