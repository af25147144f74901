import t from 'tap'
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { Encoder, Member, RoomEvent } from '../lib/rooms/types.js'

let encodeCalls = 0
const json: Encoder<string> = {
  name: 'test-json',
  encode (ev) {
    encodeCalls++
    return `{"room":${JSON.stringify(ev.room)},"event":${JSON.stringify(ev.event)},"data":${ev.dataJson},"id":"${ev.id}"}`
  }
}

function member (registry: RoomRegistry, user: string | null = null, encoder: Encoder<string> = json) {
  const received: string[] = []
  const m: Member<string> & { received: string[] } = {
    id: registry.nextMemberId(), user, transport: 'test', encoder, received,
    deliver (encoded: string, _ev: RoomEvent) { received.push(encoded) }
  }
  return m
}

t.test('a published event reaches every member of the room once, encoded once', async (t) => {
  const registry = new RoomRegistry()
  const members = Array.from({ length: 50 }, () => member(registry))
  for (const m of members) registry.join('public:lobby', m)
  const outsider = member(registry)
  registry.join('public:other', outsider)
  encodeCalls = 0
  const result = registry.publish('public:lobby', 'notification', { title: 'New Message!' })
  t.notOk(result instanceof Promise, 'synchronous with the in-memory bus')
  const { id, delivered } = result as { id: string, delivered: number }
  t.equal(delivered, 50)
  t.equal(encodeCalls, 1, 'one encoding shared by all members')
  for (const m of members) t.same(m.received, [`{"room":"public:lobby","event":"notification","data":{"title":"New Message!"},"id":"${id}"}`])
  t.same(outsider.received, [])
})
