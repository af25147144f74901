export interface BackoffOptions {
  /** delay ceiling of the first attempt; default 500 */
  baseMs?: number
  /** largest delay; default 30000 */
  maxMs?: number
  /** growth per attempt; default 2 */
  factor?: number
  /** fraction of the ceiling that is randomised (0 to 1); default 0.5: delays lie in [ceiling / 2, ceiling] */
  jitter?: number
  /** a random source in [0, 1), for tests */
  random?: () => number
}

export type BackoffSettings = Required<Omit<BackoffOptions, 'random'>>

const BACKOFF_DEFAULTS: BackoffSettings = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 }

/**
 * The delay before reconnect attempt `attempt` (0 for the first): the ceiling `min(maxMs, baseMs * factor^attempt)`
 * with the last `jitter` fraction of it randomised, so the delay lies in `[ceiling * (1 - jitter), ceiling]`.
 * Clients that lost the same server at the same moment spread out instead of coming back together.
 */
export function backoffDelay (attempt: number, options: Omit<BackoffOptions, 'random'> = {}, random: () => number = Math.random): number {
  const { baseMs, maxMs, factor, jitter } = { ...BACKOFF_DEFAULTS, ...options }
  const ceiling = Math.min(maxMs, baseMs * Math.pow(factor, Math.max(0, attempt)))
  const spread = Math.min(Math.max(jitter, 0), 1)
  return ceiling * (1 - spread) + random() * ceiling * spread
}

/** Attempt counter around `backoffDelay`; `reset()` after a good connection. */
export class Backoff {
  readonly options: BackoffSettings
  readonly random: () => number
  /** attempts counted since the last reset */
  attempt = 0

  constructor (options: BackoffOptions = {}) {
    const { random, ...rest } = options
    this.options = { ...BACKOFF_DEFAULTS, ...rest }
    this.random = random ?? Math.random
  }

  /** the delay before the next attempt; counts the attempt */
  next (): number {
    return backoffDelay(this.attempt++, this.options, this.random)
  }

  reset (): void {
    this.attempt = 0
  }
}
