import type { ControlHandler, NodeControl } from '../rooms/bus.js'
import type { RedisCore } from './core.js'

/**
 * Node control on Redis: direct messages to one member on any instance (rtc signals) over the target instance's
 * own channel (a shard channel on a cluster), answered on the sender's reply channel; and liveness, from the
 * heartbeat's live set (`p:live`, scored by Redis time).
 */
export class RedisControl implements NodeControl {
  readonly instanceTtlMs: number
  private handler: ControlHandler | null = null
  private directSeq = 0
  private readonly pending = new Map<string, { resolve: (ok: boolean) => void, timer: NodeJS.Timeout }>()

  constructor (private readonly core: RedisCore) {
    this.instanceTtlMs = core.options.presenceTtlMs
  }

  start (handler: ControlHandler): void {
    this.handler = handler
    const prefix = handler.memberPrefix
    this.core.instance = prefix
    const listen = () => {
      const { keys, subscriptions } = this.core
      subscriptions?.add(keys.direct(prefix), (message) => { this.onRequest(message) })
      subscriptions?.add(keys.reply(prefix), (message) => { this.onReply(message) })
      // listed before anything this instance's members do goes out (others judge its peers by the list)
      void this.core.beat()
    }
    if (this.core.subscriptions !== null) listen()
    else this.core.opened.then(listen, () => {})
  }

  async direct (to: string, message: unknown): Promise<boolean> {
    const dot = to.indexOf('.')
    const from = this.handler?.memberPrefix
    if (dot <= 0 || from === undefined || this.core.closed) return false
    let json: string
    try {
      json = JSON.stringify(message ?? null)
    } catch {
      return false
    }
    let client
    try {
      client = this.core.client()
    } catch {
      return false
    }
    const requestId = (++this.directSeq).toString(36)
    const answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId)
        resolve(false)
      }, this.core.options.directTimeoutMs)
      timer.unref()
      this.pending.set(requestId, { resolve, timer })
    })
    let receivers = 0
    try {
      receivers = await this.send(client, this.core.keys.direct(to.slice(0, dot)), `${requestId}\n${from}\n${to}\n${json}`)
    } catch (err) {
      this.core.log?.warn({ err, bus: this.core.busId }, 'redis bus: direct message not sent')
    }
    if (receivers === 0) this.answer(requestId, false)
    return await answer
  }

  /**
   * Member-id prefixes of the instances with a heartbeat within `presenceTtlMs`, this one included. null until this
   * instance has itself been listed for a whole `presenceTtlMs` since it (re)connected or found itself unlisted
   * (Redis restarted or flushed): before that, a live instance may simply not have beaten again yet.
   */
  async liveInstances (): Promise<ReadonlySet<string> | null> {
    const own = this.core.instance
    const since = this.core.listedSince
    if (this.core.closed || own === null || since === null || Date.now() - since < this.instanceTtlMs) return null
    let live: Array<string | number>
    try {
      live = await this.core.run((c) => c.gwLive(this.core.keys.live, this.instanceTtlMs, ''))
    } catch {
      return null
    }
    const prefixes = live.slice(1).map(String)
    // not even this instance listed: the list was lost (flush) after its last beat and cannot be trusted yet
    if (!prefixes.includes(own) || this.core.listedSince !== since) return null
    return new Set(prefixes)
  }

  /** Leaves the live set (the others drop this instance's rtc peers at once) and answers what waits. */
  async close (): Promise<void> {
    for (const id of [...this.pending.keys()]) this.answer(id, false)
    const command = this.core.command
    const own = this.core.instance
    if (command !== null && command.status === 'ready' && own !== null) await command.zrem(this.core.keys.live, own).catch(() => {})
  }

  private async send (client: ReturnType<RedisCore['client']>, channel: string, message: string): Promise<number> {
    return Number(this.core.isCluster ? await client.spublish(channel, message) : await client.publish(channel, message))
  }

  private answer (requestId: string, ok: boolean): void {
    const pending = this.pending.get(requestId)
    if (pending === undefined) return
    this.pending.delete(requestId)
    clearTimeout(pending.timer)
    pending.resolve(ok)
  }

  /** `requestId \n from \n to \n json` */
  private onRequest (message: string): void {
    const a = message.indexOf('\n')
    const b = message.indexOf('\n', a + 1)
    const c = message.indexOf('\n', b + 1)
    if (a === -1 || b === -1 || c === -1) return
    const requestId = message.slice(0, a)
    const from = message.slice(a + 1, b)
    const to = message.slice(b + 1, c)
    let ok = false
    try {
      ok = this.handler?.direct(to, JSON.parse(message.slice(c + 1))) ?? false
    } catch (err) {
      this.core.log?.warn({ err, bus: this.core.busId }, 'redis bus: direct message delivery failed')
    }
    let client
    try {
      client = this.core.client()
    } catch {
      return
    }
    this.send(client, this.core.keys.reply(from), `${requestId}\n${ok ? 1 : 0}`).catch(() => {})
  }

  /** `requestId \n 1|0` */
  private onReply (message: string): void {
    const a = message.indexOf('\n')
    if (a === -1) return
    this.answer(message.slice(0, a), message.slice(a + 1) === '1')
  }
}
