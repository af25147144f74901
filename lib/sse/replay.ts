import { parseId } from '../rooms/ids.js'
import type { HistoryResult, RoomEvent } from '../rooms/types.js'

export interface ReplayPlan {
  /** rooms whose history no longer reaches back to the resume point, in the stream's room order */
  gaps: string[]
  /** every event to write before going live: history and live events that arrived meanwhile, merged in id order */
  events: RoomEvent[]
}

/**
 * What a resuming stream writes before it goes live. `histories[i]` answers `history(rooms[i], lastEventId)`;
 * `pending` holds the live events delivered to the stream while those answers were on their way (the stream joined
 * its rooms first, so nothing published meanwhile is missed). An event can be in both (published after the join but
 * before the history was read): it is written once. Everything is ordered by id (the epoch's sequence), so the
 * ids a stream sends are strictly increasing across all its rooms. Events not after `lastEventId` (same epoch) are
 * dropped: the client has them.
 */
export function planReplay (rooms: readonly string[], histories: readonly HistoryResult[], pending: readonly RoomEvent[], lastEventId: string | null): ReplayPlan {
  const gaps: string[] = []
  const byId = new Map<string, RoomEvent>()
  const since = lastEventId === null ? null : parseId(lastEventId)
  const add = (event: RoomEvent) => {
    if (byId.has(event.id)) return
    if (since !== null && event.seq <= since.seq && parseId(event.id)?.epoch === since.epoch) return
    byId.set(event.id, event)
  }
  for (let i = 0; i < rooms.length; i++) {
    const history = histories[i]
    if (history === undefined) continue
    if (!history.recovered) gaps.push(rooms[i])
    for (const event of history.events) add(event)
  }
  for (const event of pending) add(event)
  const events = [...byId.values()].sort(byIdOrder)
  return { gaps, events }
}

/** Id order: the epoch's sequence; the id text breaks a tie (only events of two epochs can tie). */
export function byIdOrder (a: RoomEvent, b: RoomEvent): number {
  const bySeq = a.seq - b.seq
  if (bySeq !== 0) return bySeq
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
