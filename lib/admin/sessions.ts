import { createHash, randomBytes } from 'node:crypto'
import { SecretMatcher } from '../auth/secret.js'

export interface AdminSessionRecord {
  /** the CSRF token the page sends back in `X-CSRF-Token` on every change it asks for */
  readonly csrfToken: string
  readonly createdAt: number
  readonly expiresAt: number
}

export interface SessionStoreOptions {
  /** how long a session lasts from login */
  ttlMs: number
  /** sessions kept at most; the oldest goes first */
  maxSessions: number
  now?: () => number
}

/**
 * Admin sessions, in memory and bounded: each lives `ttlMs` from login, at most `maxSessions` exist (a new login
 * pushes out the oldest). The cookie carries a random 256-bit id; the store keeps only its SHA-256, so a heap dump
 * shows no usable cookie. Expired sessions are dropped when met and on every login.
 */
export class SessionStore {
  private readonly sessions = new Map<string, AdminSessionRecord>()
  private readonly now: () => number

  constructor (private readonly options: SessionStoreOptions) {
    this.now = options.now ?? Date.now
  }

  get size (): number {
    return this.sessions.size
  }

  /** Starts a session; returns the cookie value and the record. */
  create (): { id: string, session: AdminSessionRecord } {
    this.sweep()
    while (this.sessions.size >= this.options.maxSessions) {
      const oldest = this.sessions.keys().next().value as string
      this.sessions.delete(oldest)
    }
    const id = randomBytes(32).toString('base64url')
    const now = this.now()
    const session = { csrfToken: randomBytes(24).toString('base64url'), createdAt: now, expiresAt: now + this.options.ttlMs }
    this.sessions.set(digest(id), session)
    return { id, session }
  }

  /** The live session of cookie value `id`, or null. */
  get (id: string | null | undefined): AdminSessionRecord | null {
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return null
    const key = digest(id)
    const session = this.sessions.get(key)
    if (session === undefined) return null
    if (session.expiresAt <= this.now()) {
      this.sessions.delete(key)
      return null
    }
    return session
  }

  /** Ends the session of cookie value `id` (logout); false when there was none. */
  delete (id: string | null | undefined): boolean {
    if (typeof id !== 'string') return false
    return this.sessions.delete(digest(id))
  }

  clear (): void {
    this.sessions.clear()
  }

  private sweep (): void {
    const now = this.now()
    for (const [key, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(key)
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches (session: AdminSessionRecord, presented: unknown): boolean {
  return typeof presented === 'string' && new SecretMatcher(session.csrfToken).matches(presented)
}

function digest (id: string): string {
  return createHash('sha256').update(id).digest('base64url')
}
