/** A token bucket: `ratePerSec` tokens refill continuously up to `burst`. `take()` is false when empty. */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor (private readonly ratePerSec: number, private readonly burst: number, private readonly now: () => number = Date.now) {
    this.tokens = burst
    this.last = now()
  }

  take (cost = 1): boolean {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec)
    this.last = now
    if (this.tokens < cost) return false
    this.tokens -= cost
    return true
  }
}
