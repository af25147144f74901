import { createHash, timingSafeEqual } from 'node:crypto'
import { compileGlobs, type RoomGlobs } from '../rooms/names.js'

/** One API key as host code configures it: the key alone (every room) or the key with the room globs it may use. */
export type ApiKeySpec = string | { key: string, rooms?: string[] }

/** What a request authenticated by a key knows about it: its name, never the key. */
export interface ApiKey {
  readonly name: string
  /** the room globs this key is limited to; null: every room */
  readonly rooms: readonly string[] | null
  /** whether this key may publish to and read `room` */
  allows (room: string): boolean
}

interface Entry extends ApiKey {
  readonly digest: Buffer
}

const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest()

/**
 * The API keys of the external gateway. Only SHA-256 digests of the keys are kept. A lookup hashes the presented
 * key and compares it with every digest with `timingSafeEqual` (equal lengths by construction, no early exit), so
 * the time taken says nothing about which key, or how much of one, matched.
 */
export class ApiKeyTable {
  private readonly entries: Entry[]

  constructor (keys: Record<string, ApiKeySpec>) {
    this.entries = []
    const seen = new Map<string, string>()
    for (const [name, spec] of Object.entries(keys)) {
      const key = typeof spec === 'string' ? spec : spec.key
      const patterns = typeof spec === 'string' || spec.rooms === undefined ? null : spec.rooms
      const digest = sha256(key)
      const hex = digest.toString('hex')
      const other = seen.get(hex)
      if (other !== undefined) throw new Error(`the API keys ${other} and ${name} are the same key`)
      seen.set(hex, name)
      const globs: RoomGlobs | null = patterns === null ? null : compileGlobs(patterns)
      this.entries.push({
        name,
        digest,
        rooms: globs === null ? null : globs.patterns,
        allows: globs === null ? () => true : (room) => globs.matches(room)
      })
    }
  }

  get names (): string[] {
    return this.entries.map((entry) => entry.name)
  }

  /** The key `presented` is, or null. Constant time in the key's content: every entry is compared. */
  lookup (presented: string): ApiKey | null {
    const digest = sha256(presented)
    let found: Entry | null = null
    for (const entry of this.entries) {
      const equal = timingSafeEqual(digest, entry.digest)
      found = equal && found === null ? entry : found
    }
    return found
  }
}

/** The key of an `Authorization: Bearer <key>` header; null when absent or another scheme. */
export function bearerKey (authorization: string | undefined): string | null {
  if (authorization === undefined) return null
  const match = /^Bearer +(\S+) *$/i.exec(authorization)
  return match === null ? null : match[1]
}
