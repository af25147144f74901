import type { Bus } from '../rooms/bus.js'
import { RedisBroker } from './broker.js'
import { RedisControl } from './control.js'
import { RedisCore, type BusLogger, type RedisBusOptions } from './core.js'
import { RedisPresence } from './presence.js'

export type { RedisBusOptions, BusLogger }

/**
 * Rooms across instances on Redis: one server (`redis`) or a Redis Cluster (`cluster`), or a client of either kind
 * that the host passes in. The three parts share the connections and the heartbeat:
 *
 * - `broker` (lib/redis/broker.ts): per-room epochs, offsets, history and channels; one script per publish on the
 *   room's shard; an instance subscribes to a room's channel only while it has members in the room.
 * - `presence` (lib/redis/presence.ts): members and users per room across instances, and the room list.
 * - `control` (lib/redis/control.ts): direct messages to one member anywhere (rtc), and which instances are alive.
 *
 * Failure: no offline queue, so while Redis (or a slot's master) is unreachable a publish rejects at once with
 * GW_BUS_UNAVAILABLE and `failing()` says what is wrong; connections reconnect with backoff, subscriptions are
 * restored and the registry catches its rooms up from history. docs/scale-out.md has the whole story.
 */
export class RedisBus implements Bus {
  readonly name = 'redis'
  readonly core: RedisCore
  readonly broker: RedisBroker
  readonly presence: RedisPresence
  readonly control: RedisControl

  constructor (options: RedisBusOptions) {
    this.core = new RedisCore(options)
    this.broker = new RedisBroker(this.core)
    this.presence = new RedisPresence(this.core)
    this.control = new RedisControl(this.core)
  }

  /** events kept per room */
  get historySize (): number {
    return this.core.options.historySize
  }

  /** Resolves once ioredis is loaded and the connections are set up (not necessarily connected). */
  async open (): Promise<void> {
    await this.core.opened
  }

  failing (): string[] {
    return this.core.failing()
  }

  isReady (): boolean {
    return this.core.failing().length === 0
  }

  /** Resolves once connected with every subscription in place; rejects after `timeoutMs`. */
  async waitReady (timeoutMs = 5000): Promise<void> {
    await this.core.waitReady(timeoutMs)
  }

  /** Removes this instance's presence and liveness, then closes the connections (a client passed in stays open). */
  async close (): Promise<void> {
    if (this.core.closed) return
    await this.core.opened.catch(() => {})
    this.core.stopHeartbeat()
    await Promise.all([this.presence.close(), this.control.close(), this.broker.close()])
    this.core.stop()
    await this.core.closeConnections()
  }

  /** Drops the connections at once without removing anything: what a crashed instance leaves behind. */
  destroy (): void {
    this.core.destroy()
  }
}
