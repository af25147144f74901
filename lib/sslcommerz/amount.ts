const DECIMAL = /^(\d{1,15})(?:\.(\d{1,12}))?$/

/**
 * An amount as SSLCommerz writes it (`"1000"`, `"1000.00"`, `"99.5"`) in hundredths, rounded half up at the third
 * decimal; null for anything that is not a plain non-negative decimal.
 */
export function toHundredths (amount: string): bigint | null {
  const match = DECIMAL.exec(amount.trim())
  if (match === null) return null
  const fraction = (match[2] ?? '').padEnd(3, '0')
  const hundredths = BigInt(match[1]) * 100n + BigInt(fraction.slice(0, 2))
  return Number(fraction[2]) >= 5 ? hundredths + 1n : hundredths
}

/** Whether two amounts are equal as decimals to two places (`"1000"` equals `"1000.00"`). */
export function sameAmount (a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false
  const x = toHundredths(a)
  return x !== null && x === toHundredths(b)
}

/**
 * An amount for the session API, with two decimals; null unless it is a positive amount with at most two decimals
 * (a number computed in floating point, `19.99 * 3`, counts by its value to the cent).
 */
export function formatAmount (amount: number | string): string | null {
  if (typeof amount === 'number') {
    if (!Number.isFinite(amount) || amount <= 0 || amount >= 1e10) return null
    const cents = Math.round(amount * 100)
    return Math.abs(cents - amount * 100) > 1e-3 ? null : (cents / 100).toFixed(2)
  }
  const match = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(amount.trim())
  if (match === null) return null
  const formatted = `${BigInt(match[1])}.${(match[2] ?? '').padEnd(2, '0')}`
  return formatted === '0.00' ? null : formatted
}
