function baseHref (): string | undefined {
  return globalThis.location?.href
}

/** `url` (absolute, or relative to the page) as a ws:/wss: URL; http(s) is turned into ws(s). */
export function toSocketUrl (url: string | URL, base: string | undefined = baseHref()): string {
  const u = new URL(String(url), base)
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${u.href}`)
  return u.href
}

/** `url` (absolute, or relative to the page) as an http:/https: URL; ws(s) is turned into http(s). */
export function toHttpUrl (url: string | URL, base: string | undefined = baseHref()): string {
  const u = new URL(String(url), base)
  if (u.protocol === 'ws:') u.protocol = 'http:'
  else if (u.protocol === 'wss:') u.protocol = 'https:'
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`not an HTTP URL: ${u.href}`)
  return u.href
}

/** `url` with the query parameters appended. */
export function withParams (url: string, params: ReadonlyArray<readonly [string, string]>): string {
  const u = new URL(url)
  for (const [key, value] of params) u.searchParams.append(key, value)
  return u.href
}

/** A token, or a function that returns a fresh one (called before every connection attempt). */
export type TokenOption = string | null | undefined | (() => string | null | undefined | Promise<string | null | undefined>)

/** A token option (string, null, or a function returning one, possibly async) as a string or null. */
export async function resolveToken (token: TokenOption): Promise<string | null> {
  const value: unknown = typeof token === 'function' ? await token() : token
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string') throw new TypeError('a token must be a string')
  return value
}
