import { TokenBucket } from '../limits/token-bucket.js'

/**
 * Inbound byte budgets shared by every connection from one client address (docs/security.md, "Memory budget"): a
 * token bucket of bytes per address, so opening more connections does not multiply what one address may send.
 *
 * Bounded: an address has an entry only while it has an open connection here (`acquire` on open, `release` on end),
 * so the map never holds more entries than there are open connections, each a few dozen bytes.
 */
export class AddressRates {
  private readonly entries = new Map<string, { bucket: TokenBucket, refs: number }>()

  constructor (private readonly bytesPerSec: number, private readonly burstBytes: number) {}

  /** The shared bucket of `address`, counted as used by one more connection. */
  acquire (address: string): TokenBucket {
    let entry = this.entries.get(address)
    if (entry === undefined) {
      entry = { bucket: new TokenBucket(this.bytesPerSec, this.burstBytes), refs: 0 }
      this.entries.set(address, entry)
    }
    entry.refs++
    return entry.bucket
  }

  /** One connection of `address` ended; the entry goes with the last one. */
  release (address: string): void {
    const entry = this.entries.get(address)
    if (entry === undefined) return
    if (--entry.refs <= 0) this.entries.delete(address)
  }

  /** addresses with an entry (tests, metrics) */
  get size (): number {
    return this.entries.size
  }
}
