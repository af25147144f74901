import type { Broker, BrokerHandler, HistoryOptions } from '../rooms/bus.js'
import { createEvent, encodeData, eventFromJson } from '../rooms/event.js'
import { parseId } from '../rooms/ids.js'
import type { HistoryResult, PublishInput, RoomEvent, StreamPosition } from '../rooms/types.js'
import type { RedisCore, StreamEntry } from './core.js'

/**
 * The broker on Redis (one server or a cluster). Per room: a meta hash (epoch, last offset), a stream of recent
 * events and a channel, all under the hash tag `{<room>}` (lib/redis/keys.ts), so a publish is ONE script on ONE
 * shard: the next offset, the append with approximate trimming, one (S)PUBLISH on the room's channel. An instance
 * subscribes to a room's channel only while it has members in the room, so it receives nothing of other rooms.
 */
export class RedisBroker implements Broker {
  readonly name = 'redis'
  readonly echoes = true
  /** for monitoring and tests: publishes answered, room messages received, events handed to the registry */
  readonly stats = { published: 0, received: 0 }
  private handler: BrokerHandler | null = null
  private readonly rooms = new Set<string>()
  private readonly publishCommand: string

  constructor (private readonly core: RedisCore) {
    this.publishCommand = core.isCluster ? 'SPUBLISH' : 'PUBLISH'
    core.onSubscribed.push((channels) => {
      const rooms: string[] = []
      for (const channel of channels) {
        const room = core.keys.roomOfChannel(channel)
        if (room !== null && this.rooms.has(room)) rooms.push(room)
      }
      if (rooms.length > 0) this.handler?.subscribed(rooms)
    })
    core.opened.then(() => {
      for (const room of this.rooms) this.listen(room)
    }, () => {})
  }

  start (handler: BrokerHandler): void {
    this.handler = handler
  }

  publish (input: PublishInput, tag?: string): Promise<RoomEvent> {
    let dataJson: string
    let client
    try {
      dataJson = encodeData(input.data)
      client = this.core.client()
    } catch (err) {
      return Promise.reject(err)
    }
    const { keys, options } = this.core
    const room = input.room
    const time = Date.now()
    return client.gwPublish(keys.meta(room), keys.stream(room), options.historySize, options.historyTtlMs, keys.channel(room),
      options.historyEventMaxBytes, tag ?? '', input.event, dataJson, time, this.publishCommand).then((reply) => {
      this.stats.published++
      this.core.publishWorked()
      return createEvent({ epoch: reply[0], offset: reply[1] }, input, time, dataJson)
    }, (err: unknown) => { throw this.core.publishFailure(err) })
  }

  async history (room: string, sinceId: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const since = parseId(sinceId)
    const { keys } = this.core
    const [epoch, offset, recovered, entries] = await this.core.run((c) => c.gwHistory(keys.meta(room), keys.stream(room),
      since?.epoch ?? '', since?.offset ?? 0, options.repair === true ? 1 : 0))
    if (epoch === '') return { events: [], recovered: false }
    return { events: entries.map((entry) => fromEntry(epoch, room, entry)), recovered: recovered === 1, position: { epoch, offset } }
  }

  async position (room: string): Promise<StreamPosition> {
    const { keys, options } = this.core
    const [epoch, offset] = await this.core.run((c) => c.gwPosition(keys.meta(room), keys.stream(room), options.historyTtlMs))
    return { epoch, offset }
  }

  subscribe (room: string): void {
    if (this.rooms.has(room)) return
    this.rooms.add(room)
    if (this.core.subscriptions !== null) this.listen(room)
  }

  unsubscribe (room: string): void {
    if (!this.rooms.delete(room)) return
    this.core.subscriptions?.remove(this.core.keys.channel(room))
  }

  /** rooms this instance is subscribed to (wants) */
  get subscribedRooms (): number {
    return this.rooms.size
  }

  async close (): Promise<void> {
    this.rooms.clear()
  }

  private listen (room: string): void {
    this.core.subscriptions?.add(this.core.keys.channel(room), (message) => { this.onMessage(room, message) })
  }

  /** `epoch \n offset \n time \n tag \n event \n data` (lib/redis/scripts.ts PUBLISH) */
  private onMessage (room: string, message: string): void {
    const a = message.indexOf('\n')
    const b = message.indexOf('\n', a + 1)
    const c = message.indexOf('\n', b + 1)
    const d = message.indexOf('\n', c + 1)
    const e = message.indexOf('\n', d + 1)
    if (e === -1 || this.handler === null) return
    this.stats.received++
    const tag = c + 1 === d ? undefined : message.slice(c + 1, d)
    const event = eventFromJson({ epoch: message.slice(0, a), offset: Number(message.slice(a + 1, b)) }, room,
      message.slice(d + 1, e), message.slice(e + 1), Number(message.slice(b + 1, c)))
    this.handler.deliver(event, tag)
  }
}

function fromEntry (epoch: string, room: string, [id, fields]: StreamEntry): RoomEvent {
  let event = ''
  let dataJson = 'null'
  let time = 0
  for (let i = 0; i < fields.length; i += 2) {
    const value = fields[i + 1]
    switch (fields[i]) {
      case 'e': event = value; break
      case 'd': dataJson = value; break
      case 't': time = Number(value); break
    }
  }
  return eventFromJson({ epoch, offset: Number(id.slice(0, id.indexOf('-'))) }, room, event, dataJson, time)
}
