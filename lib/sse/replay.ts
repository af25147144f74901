import { parseId } from '../rooms/ids.js'
import type { HistoryResult, RoomEvent } from '../rooms/types.js'

export interface ReplayPlan {
  /** rooms whose history no longer reaches back to the resume point, in the stream's room order */
  gaps: string[]
  /** every event to write before going live, each room's in offset order, rooms interleaved by publish time */
  events: RoomEvent[]
  /**
   * Per room of the stream, the position (an event id) the client holds once the gaps are written and before the
   * first replayed event: its resume point when recovered, else just before the first replayed event of the room
   * (resuming from there reports the gap again and replays the same events), else null (nothing to say yet).
   */
  starts: Array<string | null>
}

/**
 * What a resuming SSE stream writes before it goes live. `histories[i]` answers `history(rooms[i], sinces[i])`;
 * `pending` holds the live events delivered to the stream while those answers were on their way (the stream joined
 * its rooms first, so nothing published meanwhile is missed). An event can be in both (published after the join but
 * before the history was read): it is written once. Events at or before a room's resume point (same epoch) are
 * dropped: the client has them. Each room's events stay in offset order; across rooms no order is promised, and the
 * plan interleaves them by publish time.
 */
export function planReplay (rooms: readonly string[], histories: readonly HistoryResult[], pending: readonly RoomEvent[], sinces: ReadonlyArray<string | null>): ReplayPlan {
  const gaps: string[] = []
  const perRoom: RoomEvent[][] = rooms.map(() => [])
  const index = new Map<string, number>()
  rooms.forEach((room, i) => index.set(room, i))
  const seen = new Set<string>()
  const add = (i: number, event: RoomEvent) => {
    const key = `${event.epoch}-${event.offset}`
    if (seen.has(`${i}:${key}`)) return
    const since = sinces[i] === null || sinces[i] === undefined ? null : parseId(sinces[i])
    if (since !== null && since.epoch === event.epoch && event.offset <= since.offset) return
    seen.add(`${i}:${key}`)
    perRoom[i].push(event)
  }
  for (let i = 0; i < rooms.length; i++) {
    const history = histories[i]
    if (history === undefined) continue
    if (!history.recovered) gaps.push(rooms[i])
    for (const event of history.events) add(i, event)
  }
  for (const event of pending) {
    const i = index.get(event.room)
    if (i !== undefined) add(i, event)
  }
  const starts: Array<string | null> = rooms.map((_, i) => {
    // history in order, then live events (all later than what history had, or duplicates of it): already in order
    const list = perRoom[i]
    if (histories[i]?.recovered === true) return sinces[i] ?? null
    if (list.length > 0) return `${list[0].epoch}-${list[0].offset - 1}`
    return null
  })
  return { gaps, events: mergeByTime(perRoom), starts }
}

/** Merges the rooms' lists, each kept in its order, taking the earliest publish time first (room order on ties). */
function mergeByTime (lists: RoomEvent[][]): RoomEvent[] {
  const heads = lists.map(() => 0)
  const out: RoomEvent[] = []
  for (;;) {
    let best = -1
    for (let i = 0; i < lists.length; i++) {
      if (heads[i] >= lists[i].length) continue
      if (best === -1 || lists[i][heads[i]].time < lists[best][heads[best]].time) best = i
    }
    if (best === -1) return out
    out.push(lists[best][heads[best]++])
  }
}
