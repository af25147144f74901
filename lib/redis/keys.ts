/**
 * Every Redis key and channel of the bus (prefix `p`, default `gw`). The keys of one room carry the hash tag
 * `{<room>}` (room names have no braces), so on a Redis Cluster they share a slot: one script per publish, one shard
 * per room, and a room's shard channel lives there too.
 *
 * - `p:{room}:m`   hash: `e` the room's epoch, `o` its last offset, `g` the highest offset not kept in history
 * - `p:{room}:h`   stream: the room's recent events, entry id `<offset>-0`, fields `e` event, `d` data JSON, `t` time
 * - `p:{room}:c`   channel: the room's events (sharded pub/sub on a cluster)
 * - `p:{room}:pr`  hash: presence of the room, per instance `<id>` (expiry, Redis ms), `<id>:n` (members),
 *                  `<id>:u:<user>` (members of that user)
 * - `p:live`       sorted set: member-id prefixes of live instances, scored by their last heartbeat (Redis ms)
 * - `p:rooms:{<id>}` hash of one instance: room → local members (the room list)
 * - `p:{d:<prefix>}:d`, `p:{r:<id>}:r`  channels of direct messages to an instance's members, and of their answers
 */
export class RedisKeys {
  readonly live: string
  readonly roomsOf: (instance: string) => string

  constructor (readonly prefix: string) {
    this.live = `${prefix}:live`
    this.roomsOf = (instance) => `${prefix}:rooms:{${instance}}`
  }

  meta (room: string): string {
    return `${this.prefix}:{${room}}:m`
  }

  stream (room: string): string {
    return `${this.prefix}:{${room}}:h`
  }

  channel (room: string): string {
    return `${this.prefix}:{${room}}:c`
  }

  presence (room: string): string {
    return `${this.prefix}:{${room}}:pr`
  }

  /** the room of a room channel, or null for any other channel */
  roomOfChannel (channel: string): string | null {
    const head = this.prefix.length + 2
    if (!channel.endsWith('}:c') || !channel.startsWith(`${this.prefix}:{`)) return null
    return channel.slice(head, channel.length - 3)
  }

  direct (memberPrefix: string): string {
    return `${this.prefix}:{d:${memberPrefix}}:d`
  }

  reply (instance: string): string {
    return `${this.prefix}:{r:${instance}}:r`
  }
}
