import t from 'tap'
import { startRedis } from './helpers/redis.js'
import { connectWs, joinRoom, openSse, poll, roomsApi, signToken, startInstances } from './helpers/instance.js'
import { WEBHOOK_SECRET, checkoutSession, eventPayload, sign } from './helpers/fake-stripe.js'

// several server.ts processes start (tsx compiles each): on a busy machine that outlasts the default file timeout
t.setTimeout(180_000)

// Two server.ts processes on one real redis-server, configured only through the environment (REDIS_URL and the
// rest), as they would run behind a load balancer. Every client talks real HTTP, SSE and WebSocket.

const JWT_SECRET = 'cluster-test-secret-that-is-long-enough-for-hs256'
const API_KEY = 'ops-cluster-0123456789abcdef'
const auth = { authorization: `Bearer ${API_KEY}` }
const { publish, presence } = roomsApi(auth)

/** The position of the stream's `index`-th room in a stream id (`<position>~<position>...`). */
function entryOf (streamId: string | undefined, index: number): string | undefined {
  return streamId?.split('~')[index]
}



t.test('two server.ts instances on one Redis behave as one', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const [a, b] = await startInstances(t, 2, {
    GATEWAYS: 'ws,sse,external,stripe',
    REDIS_URL: redis.url,
    AUTH_JWT_SECRET: JWT_SECRET,
    EXTERNAL_API_KEYS: `ops=${API_KEY}`,
    CLIENT_PUBLISH_ROOMS: 'public:chat',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET
  })
  await Promise.all([a.waitReady(), b.waitReady()])

  t.test('an event published on A through the HTTP API reaches a ws member and an SSE member on B with one id', async (t) => {
    const ws = await connectWs(t, b, await signToken(JWT_SECRET, 'bob'))
    await joinRoom(ws, 'public:news')
    const sse = await openSse(t, b.port, '/sse?room=public:news')
    t.equal(sse.status, 200)

    const sent = await publish(a, 'public:news', 'notification', { title: 'New Message!' })
    t.equal(sent.delivered, 0, 'no member on A: delivered counts the publishing instance only')
    const frame = await ws.until((f) => f.op === 'event')
    t.same(frame, { op: 'event', room: 'public:news', event: 'notification', data: { title: 'New Message!' }, id: sent.id })
    const event = await sse.next()
    t.same({ id: event.id, event: event.event, data: event.data },
      { id: sent.id, event: 'notification', data: { room: 'public:news', data: { title: 'New Message!' } } })
  })

  t.test('a ws client on A publishes to a CLIENT_PUBLISH_ROOMS room; members on A and B get it with the acked id', async (t) => {
    const sender = await connectWs(t, a, await signToken(JWT_SECRET, 'alice'))
    await joinRoom(sender, 'public:chat')
    const ws = await connectWs(t, b)
    await joinRoom(ws, 'public:chat')
    const sse = await openSse(t, b.port, '/sse?room=public:chat')

    sender.send({ op: 'publish', room: 'public:chat', event: 'msg', data: { text: 'hi from A' }, ref: 'p1' })
    const ack = await sender.until((f) => f.ref === 'p1')
    t.match(ack, { op: 'ack', ref: 'p1', id: String })
    t.equal(sender.all.find((f) => f.op === 'event')?.id, ack.id, 'the publisher, a member, gets its own event')
    const remote = await ws.until((f) => f.op === 'event')
    t.same(remote, { op: 'event', room: 'public:chat', event: 'msg', data: { text: 'hi from A' }, id: ack.id })
    t.equal((await sse.next()).id, ack.id)
  })

  t.test('an SSE stream resumed on B with the Last-Event-ID from A gets exactly the missed events of its rooms, each in order', async (t) => {
    const rooms = '/sse?room=public:feed&room=public:feed2'
    const first = await openSse(t, a.port, rooms)
    const seen = [await publish(a, 'public:feed', 'e1', 1), await publish(b, 'public:feed2', 'e2', 2)]
    const got = [await first.next(), await first.next()]
    // a stream of several rooms sends stream ids: the position of each of its rooms (docs/scale-out.md)
    t.same(got.map((f) => [f.event, entryOf(f.id, f.event === 'e1' ? 0 : 1)]).sort(), [['e1', seen[0].id], ['e2', seen[1].id]],
      'the stream on A got the first two')
    const lastEventId = first.events[first.events.length - 1].id as string
    t.same([entryOf(lastEventId, 0), entryOf(lastEventId, 1)], [seen[0].id, seen[1].id], 'its last id holds both rooms\' positions')
    first.close()
    await first.ended

    // published while the browser was away, on both instances, in both rooms, and one in a room it is not in
    const missed = [await publish(b, 'public:feed', 'e3', 3), await publish(a, 'public:feed2', 'e4', 4)]
    await publish(a, 'public:other', 'x', 0)
    missed.push(await publish(b, 'public:feed', 'e5', 5))

    const resumed = await openSse(t, b.port, rooms, { 'last-event-id': lastEventId })
    const replay = [await resumed.next(), await resumed.next(), await resumed.next()]
    const of = (room: string) => replay.filter((f) => f.data.room === room).map((f) => [entryOf(f.id, room === 'public:feed' ? 0 : 1), f.event, f.data.data])
    t.same(of('public:feed'), [[missed[0].id, 'e3', 3], [missed[2].id, 'e5', 5]], 'the missed events of one room, in order')
    t.same(of('public:feed2'), [[missed[1].id, 'e4', 4]], 'and of the other')
    const live = await publish(a, 'public:feed2', 'e6', 6)
    const next = await resumed.next()
    t.same([next.event, entryOf(next.id, 1), entryOf(next.id, 0)], ['e6', live.id, missed[2].id], 'then live events')
    t.same(resumed.events.map((f) => f.event).sort(), ['e3', 'e4', 'e5', 'e6'], 'no gap, no duplicate, nothing else')
  })

  t.test('a ws join with since on B gets recovered:true and exactly the events missed since an id seen on A', async (t) => {
    const room = 'public:resume'
    const onA = await connectWs(t, a)
    await joinRoom(onA, room)
    await publish(b, room, 'r1', 1)
    const last = await onA.until((f) => f.op === 'event' && f.event === 'r1')
    onA.ws.terminate()

    const missed = [await publish(a, room, 'r2', 2), await publish(b, room, 'r3', 3)]
    const onB = await connectWs(t, b)
    const joined = await joinRoom(onB, room, last.id)
    t.equal(joined.recovered, true, 'every event after since is still in history')
    const live = await publish(a, room, 'r4', 4)
    await onB.until((f) => f.op === 'event' && f.id === live.id)
    t.same(onB.all.filter((f) => f.op === 'event').map((f) => [f.id, f.event]),
      [[missed[0].id, 'r2'], [missed[1].id, 'r3'], [live.id, 'r4']], 'replayed in order, then live, no duplicate')
  })

  t.test('presence counts a ws member on A and an SSE member on B, asked on either instance', async (t) => {
    const room = 'public:lobby'
    const ws = await connectWs(t, a, await signToken(JWT_SECRET, 'alice'))
    await joinRoom(ws, room)
    const sse = await openSse(t, b.port, `/sse?room=${room}&token=${await signToken(JWT_SECRET, 'bob')}`)
    t.equal(sse.status, 200)

    const both = { members: 2, users: ['alice', 'bob'] }
    for (const instance of [a, b]) {
      await poll(async () => (await presence(instance, room)).members === 2, 5000, `presence of both on ${instance.name}`)
      t.same(await presence(instance, room), both, `${instance.name} counts both`)
    }
    const listed = await a.request('GET', '/api/rooms', { headers: auth })
    t.match(listed.body.rooms, [{ room, members: 2 }], 'the room list counts both as well')

    sse.close()
    for (const instance of [a, b]) {
      await poll(async () => (await presence(instance, room)).members === 1, 5000, `bob to leave on ${instance.name}`)
      t.same(await presence(instance, room), { members: 1, users: ['alice'] }, `${instance.name} sees bob leave`)
    }
  })

  t.test('the same Idempotency-Key sent to A and to B at once publishes once; both get the first answer', async (t) => {
    const room = 'public:orders'
    const ws = await connectWs(t, b)
    await joinRoom(ws, room)
    const headers = { ...auth, 'idempotency-key': 'order-4242' }
    const body = { event: 'order.paid', data: { order: 4242 } }
    const answers = await Promise.all([a, b].map(async (instance) => await instance.request('POST', `/api/rooms/${room}/events`, { headers, body })))
    t.same(answers.map((r) => r.status), [202, 202])
    t.same(answers[0].body, answers[1].body, 'one answer for both')
    t.equal(answers.filter((r) => r.headers['idempotency-replayed'] === 'true').length, 1, 'exactly one is a replay')

    const other = await a.request('POST', `/api/rooms/${room}/events`, { headers, body: { event: 'order.paid', data: { order: 1 } } })
    t.equal(other.status, 422, 'the key with another body is refused on either instance')
    t.equal(other.body.code, 'GW_IDEMPOTENCY_MISMATCH')

    // events of one room arrive in publish order: once the sentinel is in, a second publish would be too
    const sentinel = await publish(a, room, 'sentinel', null)
    await ws.until((f) => f.op === 'event' && f.id === sentinel.id)
    t.same(ws.all.filter((f) => f.op === 'event').map((f) => f.event), ['order.paid', 'sentinel'], 'published once')
    t.equal(ws.all.find((f) => f.event === 'order.paid').id, answers[0].body.id)
  })

  t.test('a Stripe event delivered to A and to B at once is handled and published once', async (t) => {
    const ws = await connectWs(t, b, await signToken(JWT_SECRET, 'ops', ['stripe']))
    await joinRoom(ws, 'stripe')
    const payload = eventPayload('checkout.session.completed', checkoutSession(), 'evt_cluster_1')
    const headers = { 'content-type': 'application/json', 'stripe-signature': sign(payload) }
    const answers = await Promise.all([a, b].map(async (instance) => await instance.request('POST', '/webhooks/stripe', { headers, body: payload })))
    t.same(answers.map((r) => r.status), [200, 200])
    t.same(answers.map((r) => r.body).sort((x, y) => Object.keys(x).length - Object.keys(y).length),
      [{ received: true }, { received: true, duplicate: true }], 'one handled it, the other saw a duplicate')

    const sentinel = await publish(a, 'stripe', 'sentinel', null)
    await ws.until((f) => f.op === 'event' && f.id === sentinel.id)
    t.same(ws.all.filter((f) => f.op === 'event').map((f) => f.event), ['stripe.checkout.session.completed', 'sentinel'], 'published once')
  })
})
