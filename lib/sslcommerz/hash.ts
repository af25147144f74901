import { createHash, timingSafeEqual } from 'node:crypto'

/** Hex MD5 of a string's UTF-8 bytes (what PHP's `md5()` gives for the same bytes). */
export const md5Hex = (text: string): string => createHash('md5').update(text, 'utf8').digest('hex')

/**
 * The `verify_sign` SSLCommerz puts on an IPN (and on the form it posts to the success, fail and cancel URLs), as
 * its own PHP library computes it (`SSLCOMMERZ_hash_varify`): the fields named in `verify_key` that are present,
 * plus `store_passwd` = hex MD5 of the store password, sorted by name, as `name=value` pairs joined by `&`, hex MD5
 * of that. Null when `verify_key` is absent or empty.
 */
export function expectedSign (fields: Readonly<Record<string, string>>, storePasswordMd5: string): string | null {
  const verifyKey = fields.verify_key
  if (typeof verifyKey !== 'string' || verifyKey === '') return null
  const signed = new Map<string, string>()
  for (const name of verifyKey.split(',')) {
    if (Object.hasOwn(fields, name)) signed.set(name, fields[name])
  }
  signed.set('store_passwd', storePasswordMd5)
  // PHP's ksort on string keys: byte order (the names are ASCII and unique)
  const names = [...signed.keys()].sort((a, b) => a < b ? -1 : 1)
  return md5Hex(names.map((name) => `${name}=${signed.get(name) as string}`).join('&'))
}

export type SignCheck = 'ok' | 'missing' | 'mismatch'

/** Checks `verify_sign` against `expectedSign`, comparing in constant time. */
export function checkSign (fields: Readonly<Record<string, string>>, storePasswordMd5: string): SignCheck {
  const given = fields.verify_sign
  const expected = expectedSign(fields, storePasswordMd5)
  if (expected === null || typeof given !== 'string' || given === '') return 'missing'
  const a = Buffer.from(expected, 'utf8')
  const b = Buffer.from(given, 'utf8')
  return a.length === b.length && timingSafeEqual(a, b) ? 'ok' : 'mismatch'
}

/** The field names `verify_key` lists (those a valid `verify_sign` vouches for). */
export function signedNames (fields: Readonly<Record<string, string>>): Set<string> {
  return new Set((fields.verify_key ?? '').split(',').filter((name) => name !== ''))
}
