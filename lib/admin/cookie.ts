/** The value of cookie `name` in a `Cookie` request header, or null. */
export function readCookie (header: string | undefined, name: string): string | null {
  if (header === undefined) return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}

export interface CookieAttributes {
  path: string
  /** seconds; 0 deletes the cookie */
  maxAgeS: number
  secure: boolean
}

/** A `Set-Cookie` value: always HttpOnly and SameSite=Strict (the admin session cookie). */
export function sessionCookie (name: string, value: string, { path, maxAgeS, secure }: CookieAttributes): string {
  return `${name}=${value}; Path=${path}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`
}
