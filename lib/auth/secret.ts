import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * A secret compared in constant time: the expected value is kept only as its SHA-256 digest, and a candidate is
 * hashed and compared with `timingSafeEqual`, so neither the time taken nor an early exit tells how much of it
 * matched, whatever the lengths.
 */
export class SecretMatcher {
  private readonly digest: Buffer

  constructor (secret: string) {
    this.digest = sha256(secret)
  }

  matches (candidate: string | null | undefined): boolean {
    if (typeof candidate !== 'string') return false
    return timingSafeEqual(sha256(candidate), this.digest)
  }
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
