/** Room names: 1 to 128 characters of `A-Za-z0-9_.:@-` (docs/protocol.md). */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/
export const ROOM_NAME_RULE = '1 to 128 characters of A-Za-z0-9_.:@-'

export function isRoomName (value: unknown): value is string {
  return typeof value === 'string' && ROOM_NAME_PATTERN.test(value)
}

/**
 * A compiled list of room globs: `*` matches any run of characters (including none), `?` exactly one; everything
 * else is literal. `user:*` matches `user:42`; `*` matches every room.
 */
export interface RoomGlobs {
  readonly patterns: readonly string[]
  matches (room: string): boolean
}

export function compileGlobs (patterns: readonly string[]): RoomGlobs {
  const cleaned = patterns.map((p) => p.trim()).filter((p) => p.length > 0)
  if (cleaned.length === 0) return { patterns: [], matches: () => false }
  const source = cleaned.map(globToSource).join('|')
  const regex = new RegExp(`^(?:${source})$`)
  return { patterns: cleaned, matches: (room) => regex.test(room) }
}

function globToSource (glob: string): string {
  let out = ''
  for (const ch of glob) {
    if (ch === '*') out += '.*'
    else if (ch === '?') out += '.'
    else out += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')
  }
  return out
}
