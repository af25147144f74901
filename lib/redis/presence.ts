import type { PresenceManager } from '../rooms/bus.js'
import type { Member, Presence, RoomSummary } from '../rooms/types.js'
import type { HeartbeatPart, RedisCore } from './core.js'

interface Counts {
  members: number
  users: Map<string, number>
}

/**
 * Presence across instances, per room (so on a cluster each room's presence lives on the room's shard):
 * `p:{room}:pr` holds, per instance, its member count, its members per user and its expiry (Redis time). Joins and
 * leaves of one tick go out as one script per room; the heartbeat renews each room's expiry and rewrites what Redis
 * lost. Reading a room's presence is one script that also drops the parts of instances that stopped beating (a
 * crash). The room list: `p:rooms:{<instance>}` per instance (room → members), read for every live instance.
 */
export class RedisPresence implements PresenceManager, HeartbeatPart {
  private readonly local = new Map<string, Counts>()
  private readonly deltas = new Map<string, Counts>()
  /** rooms whose Redis part must be written whole (a write failed, or Redis lost it) */
  private readonly stale = new Set<string>()
  private scheduled = false

  constructor (private readonly core: RedisCore) {
    core.parts.push(this)
  }

  private get id (): string {
    return this.core.instance ?? this.core.busId
  }

  add (room: string, member: Member): void {
    this.change(room, member, 1)
  }

  remove (room: string, member: Member): void {
    this.change(room, member, -1)
  }

  async presence (room: string, here: Presence): Promise<Presence> {
    const others = await this.core.run((c) => c.gwPresenceRead(this.core.keys.presence(room), this.id))
    const users = new Set(here.users)
    for (let i = 1; i < others.length; i++) users.add(String(others[i]))
    return { members: here.members + Number(others[0]), users: [...users] }
  }

  async list (here: RoomSummary[]): Promise<RoomSummary[]> {
    const { keys, options } = this.core
    const live = await this.core.run((c) => c.gwLive(keys.live, options.presenceTtlMs, ''))
    const others = live.slice(1).map(String).filter((id) => id !== this.id)
    const hashes = await this.core.run(async (c) => await Promise.all(others.map(async (id) => await c.hgetall(keys.roomsOf(id)))))
    const counts = new Map<string, number>()
    for (const { room, members } of here) counts.set(room, members)
    for (const hash of hashes) {
      for (const [room, n] of Object.entries(hash)) {
        const members = Number(n)
        if (members > 0) counts.set(room, (counts.get(room) ?? 0) + members)
      }
    }
    return [...counts].map(([room, members]) => ({ room, members }))
  }

  /** Renews this instance's part of every room it has members in; rewrites what Redis lost (`lost`: everything). */
  async beat (lost: boolean): Promise<void> {
    const command = this.core.command
    if (command === null) return
    const { keys, options } = this.core
    const ttl = options.presenceTtlMs
    if (lost) for (const room of this.local.keys()) this.stale.add(room)
    const touches = [...this.local.keys()].filter((room) => !this.stale.has(room)).map(async (room) => {
      if (await command.gwPresenceTouch(keys.presence(room), this.id, ttl) === 0) this.stale.add(room)
    })
    await Promise.all(touches)
    const rewrite = [...this.stale]
    this.stale.clear()
    // a whole rewrite carries the joins and leaves not flushed yet: adding them after it would count them twice
    for (const room of rewrite) this.deltas.delete(room)
    try {
      await Promise.all(rewrite.map(async (room) => { await this.write(room, 'set', this.local.get(room)) }))
      const roomsKey = keys.roomsOf(this.id)
      if (rewrite.length > 0) {
        const flat: Array<string | number> = []
        for (const [room, counts] of this.local) flat.push(room, counts.members)
        await command.del(roomsKey)
        for (let i = 0; i < flat.length; i += 2000) await command.hset(roomsKey, ...flat.slice(i, i + 2000))
      }
      await command.pexpire(roomsKey, ttl)
    } catch (err) {
      for (const room of rewrite) this.stale.add(room)
      throw err
    }
  }

  /** Removes this instance's part of every room (a graceful shutdown: the others see its members leave at once). */
  async close (): Promise<void> {
    const command = this.core.command
    const rooms = [...this.local.keys()]
    this.local.clear()
    this.deltas.clear()
    if (command === null || command.status !== 'ready') return
    await Promise.all([
      ...rooms.map(async (room) => { await this.write(room, 'set', undefined) }),
      command.del(this.core.keys.roomsOf(this.id))
    ]).catch(() => {})
  }

  private change (room: string, member: Member, by: 1 | -1): void {
    for (const counts of [this.count(this.local, room), this.count(this.deltas, room)]) {
      counts.members += by
      if (member.user !== null) counts.users.set(member.user, (counts.users.get(member.user) ?? 0) + by)
    }
    const local = this.local.get(room) as Counts
    if (local.members <= 0) this.local.delete(room)
    else if (member.user !== null && local.users.get(member.user) === 0) local.users.delete(member.user)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private count (map: Map<string, Counts>, room: string): Counts {
    let counts = map.get(room)
    if (counts === undefined) map.set(room, counts = { members: 0, users: new Map() })
    return counts
  }

  /** The joins and leaves of one tick: one script per room, and the room list, as deltas. */
  private flush (): void {
    const deltas = [...this.deltas]
    this.deltas.clear()
    const command = this.core.command
    if (command === null || command.status !== 'ready' || this.core.closed) {
      for (const [room] of deltas) this.stale.add(room)
      return
    }
    const roomsKey = this.core.keys.roomsOf(this.id)
    for (const [room, delta] of deltas) {
      if (delta.members === 0 && [...delta.users.values()].every((n) => n === 0)) continue
      this.write(room, 'add', delta).catch(() => { this.stale.add(room) })
      const members = this.local.get(room)?.members ?? 0
      const listed = members > 0 ? command.hset(roomsKey, room, members) : command.hdel(roomsKey, room)
      listed.catch(() => { this.stale.add(room) })
    }
  }

  private async write (room: string, mode: 'add' | 'set', counts: Counts | undefined): Promise<void> {
    const command = this.core.client()
    const args: Array<string | number> = [this.core.keys.presence(room), this.id, this.core.options.presenceTtlMs, mode, counts?.members ?? 0]
    for (const [user, n] of counts?.users ?? []) if (n !== 0) args.push(user, n)
    await command.gwPresenceWrite(...args)
  }
}
