import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { rooms, type RoomsOptions } from '../plugins/rooms.js'
import { wsGateway, type WsGatewayOptions } from '../plugins/ws.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import type { PublishInput } from '../lib/rooms/types.js'
import { Frames, waitFor } from './helpers/ws-client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'


const jwt = createJwtAuthenticator(JWT_SECRET)

async function build (t: Test, options: WsGatewayOptions = {}, roomsOptions: RoomsOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(rooms, roomsOptions)
  await app.register(wsGateway, { closeTimeoutMs: 200, ...options })
  await app.ready()
  return app
}

/** An injected connection whose frames are collected from the first one on (hello included). */
async function connect (t: Test, app: FastifyInstance, path = '/ws', context: Record<string, unknown> = {}): Promise<Frames> {
  let frames: Frames | undefined
  const ws = await app.injectWS(path, { socket: { remoteAddress: '10.0.0.1' }, ...context } as never, {
    onInit: (socket) => { frames = new Frames(socket) }
  })
  t.after(() => { ws.terminate() })
  return frames as Frames
}

async function connected (t: Test, app: FastifyInstance, path = '/ws', context: Record<string, unknown> = {}) {
  const frames = await connect(t, app, path, context)
  const hello = await frames.next()
  return { frames, hello }
}

function publishOf (app: FastifyInstance, room: string, event: string, data: unknown): string {
  return (app.rooms.publish(room, event, data) as { id: string }).id
}

t.test('the first frame is hello with the connection id and a null user for an anonymous client', async (t) => {
  const app = await build(t)
  const { hello } = await connected(t, app)
  t.equal(hello.op, 'hello')
  t.match(hello.conn, /^[0-9a-f]+\.[0-9a-z]+$/)
  t.equal(hello.user, null)
})

t.test('a token in the query string authenticates before the upgrade: hello carries the user', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { hello } = await connected(t, app, `/ws?token=${await signToken('42')}`)
  t.same(hello, { op: 'hello', conn: hello.conn, user: '42' })
})

t.test('join answers joined with the ref and the member then receives published events', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:lobby', ref: 'j1' }), { op: 'joined', room: 'public:lobby', ref: 'j1' })
  const id = publishOf(app, 'public:lobby', 'notification', { title: 'New Message!' })
  t.same(await frames.next(), { op: 'event', room: 'public:lobby', event: 'notification', data: { title: 'New Message!' }, id })
})

t.test('an answer to a frame without ref carries no ref; a numeric ref is echoed unchanged', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:a' }), { op: 'joined', room: 'public:a' })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' })
  t.same(await frames.request({ op: 'ping', ref: 7 }), { op: 'pong', ref: 7 })
})

t.test('joining a room twice changes nothing and answers joined again', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  await frames.request({ op: 'join', room: 'public:a' })
  t.same(await frames.request({ op: 'join', room: 'public:a', ref: 2 }), { op: 'joined', room: 'public:a', ref: 2 })
  t.equal(app.rooms.size('public:a'), 1)
  const id = publishOf(app, 'public:a', 'e', 1)
  t.same(await frames.next(), { op: 'event', room: 'public:a', event: 'e', data: 1, id })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' }, 'the event came once')
})

t.test('leave answers left and stops the room\'s events; leaving a room not joined is NOT_FOUND', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  await frames.request({ op: 'join', room: 'public:a' })
  t.same(await frames.request({ op: 'leave', room: 'public:a', ref: 'l' }), { op: 'left', room: 'public:a', ref: 'l' })
  t.equal(app.rooms.size('public:a'), 0)
  publishOf(app, 'public:a', 'e', 1)
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' }, 'no event after leaving')
  const error = await frames.request({ op: 'leave', room: 'public:a', ref: 'again' })
  t.match(error, { op: 'error', code: 'NOT_FOUND', ref: 'again' })
})

t.test('a client publishes where clientPublishRooms allows: members get the event, the publisher an ack', async (t) => {
  const app = await build(t, { publicRooms: ['public:*', 'chat:*'], clientPublishRooms: ['chat:*'] })
  const { frames: publisher } = await connected(t, app)
  const { frames: member } = await connected(t, app)
  await member.request({ op: 'join', room: 'chat:1' })
  const ack = await publisher.request({ op: 'publish', room: 'chat:1', event: 'msg', data: { text: 'hi' }, ref: 'p1' })
  t.match(ack, { op: 'ack', ref: 'p1', id: String })
  t.same(await member.next(), { op: 'event', room: 'chat:1', event: 'msg', data: { text: 'hi' }, id: ack.id })
})

t.test('a publisher that is a member receives its own event before the ack', async (t) => {
  const app = await build(t, { publicRooms: ['chat:*'], clientPublishRooms: ['chat:*'] })
  const { frames } = await connected(t, app)
  await frames.request({ op: 'join', room: 'chat:1' })
  frames.send({ op: 'publish', room: 'chat:1', event: 'msg', data: null })
  const event = await frames.next()
  t.match(event, { op: 'event', room: 'chat:1', event: 'msg', data: null })
  t.same(await frames.next(), { op: 'ack', id: event.id })
})

t.test('publishing outside clientPublishRooms, or to a room the client may not join, is FORBIDDEN', async (t) => {
  const app = await build(t, { clientPublishRooms: ['chat:*'] })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'publish', room: 'public:a', event: 'e', data: 1, ref: 1 }), { op: 'error', code: 'FORBIDDEN', ref: 1 })
  t.match(await frames.request({ op: 'publish', room: 'chat:1', event: 'e', data: 1, ref: 2 }), { op: 'error', code: 'FORBIDDEN', ref: 2 },
    'chat:1 is not a public room for this anonymous client')
})

t.test('an authorizePublish option decides publishing', async (t) => {
  const app = await build(t, { authorizePublish: (_user, room) => room === 'feed' })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'publish', room: 'feed', event: 'e', data: 1 }), { op: 'ack' })
  t.match(await frames.request({ op: 'publish', room: 'other', event: 'e', data: 1 }), { op: 'error', code: 'FORBIDDEN' })
})

t.test('a publish the bus cannot take is answered UNAVAILABLE and the connection lives on', async (t) => {
  class FailingBus extends MemoryBus {
    override append (input: PublishInput) {
      if (input.room === 'public:down') throw new Error('bus down')
      return super.append(input)
    }
  }
  const app = await build(t, { clientPublishRooms: ['public:*'] }, { bus: new FailingBus({ historySize: 10 }) })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'publish', room: 'public:down', event: 'e', data: 1, ref: 'x' }), { op: 'error', code: 'UNAVAILABLE', ref: 'x' })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' })
})

t.test('ping answers pong with the ref', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'ping', ref: 'abc' }), { op: 'pong', ref: 'abc' })
})

t.test('malformed frames get BAD_MESSAGE (ref echoed when readable) and the connection stays open', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  const cases: Array<[unknown, Record<string, unknown>]> = [
    ['not json', { code: 'BAD_MESSAGE' }],
    ['[1,2]', { code: 'BAD_MESSAGE' }],
    ['"text"', { code: 'BAD_MESSAGE' }],
    [{ ref: 'noop' }, { code: 'BAD_MESSAGE', ref: 'noop' }],
    [{ op: 'shout', ref: 'u' }, { code: 'BAD_MESSAGE', ref: 'u', message: /unknown op/ }],
    [{ op: 'constructor', ref: 'proto' }, { code: 'BAD_MESSAGE', ref: 'proto' }],
    [{ op: 'join', room: 'has space', ref: 'r' }, { code: 'BAD_MESSAGE', ref: 'r', message: /room/ }],
    [{ op: 'join', room: 'x'.repeat(129), ref: 'long' }, { code: 'BAD_MESSAGE', ref: 'long' }],
    [{ op: 'join', ref: 'none' }, { code: 'BAD_MESSAGE', ref: 'none' }],
    [{ op: 'publish', room: 'public:a', event: 'with space', ref: 'ev' }, { code: 'BAD_MESSAGE', ref: 'ev' }],
    [{ op: 'join', room: 'public:a', ref: { nested: true } }, { code: 'BAD_MESSAGE' }]
  ]
  for (const [frame, expected] of cases) {
    const answer = await frames.request(frame)
    t.match(answer, { op: 'error', ...expected }, `answer to ${JSON.stringify(frame)}`)
    t.type(answer.message, 'string')
    if (!('ref' in expected)) t.notOk('ref' in answer, 'no ref echoed')
  }
  frames.send(Buffer.from('{"op":"ping"}'), { binary: true })
  t.match(await frames.next(), { op: 'error', code: 'BAD_MESSAGE', message: /binary/ })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' }, 'still open')
})

t.test('user:<id> is joinable only by that user, whatever the join rule says', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames: anonymous } = await connected(t, app)
  t.match(await anonymous.request({ op: 'join', room: 'user:42', ref: 1 }), { op: 'error', code: 'FORBIDDEN', ref: 1 })
  const { frames: other } = await connected(t, app, `/ws?token=${await signToken('7')}`)
  t.match(await other.request({ op: 'join', room: 'user:42' }), { op: 'error', code: 'FORBIDDEN' })
  const { frames: owner } = await connected(t, app, `/ws?token=${await signToken('42')}`)
  t.same(await owner.request({ op: 'join', room: 'user:42' }), { op: 'joined', room: 'user:42' })
  const id = publishOf(app, 'user:42', 'notification', { n: 1 })
  t.same(await owner.next(), { op: 'event', room: 'user:42', event: 'notification', data: { n: 1 }, id })
  t.same(await other.request({ op: 'ping' }), { op: 'pong' }, 'the other user got nothing')

  const permissive = await build(t, { authenticate: jwt, authorizeJoin: () => true })
  const { frames: intruder } = await connected(t, permissive, `/ws?token=${await signToken('7')}`)
  t.match(await intruder.request({ op: 'join', room: 'user:42' }), { op: 'error', code: 'FORBIDDEN' },
    'an authorizeJoin that allows everything still cannot open another user\'s room')
  t.same(await intruder.request({ op: 'join', room: 'anything' }), { op: 'joined', room: 'anything' })
})

t.test('the token\'s rooms claim and publicRooms decide the other rooms', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames } = await connected(t, app, `/ws?token=${await signToken('42', { rooms: ['team:*', 'ops'] })}`)
  t.match(await frames.request({ op: 'join', room: 'team:red' }), { op: 'joined' })
  t.match(await frames.request({ op: 'join', room: 'ops' }), { op: 'joined' })
  t.match(await frames.request({ op: 'join', room: 'public:news' }), { op: 'joined' })
  t.match(await frames.request({ op: 'join', room: 'admin' }), { op: 'error', code: 'FORBIDDEN' })
  const { frames: anonymous } = await connected(t, app)
  t.match(await anonymous.request({ op: 'join', room: 'team:red' }), { op: 'error', code: 'FORBIDDEN' })
  t.match(await anonymous.request({ op: 'join', room: 'public:news' }), { op: 'joined' })
})

t.test('an authorizeJoin that throws refuses the join with FORBIDDEN', async (t) => {
  const app = await build(t, { authorizeJoin: async () => { throw new Error('db down') } })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'join', room: 'public:a', ref: 1 }), { op: 'error', code: 'FORBIDDEN', ref: 1 })
})

t.test('an authorizePublish that throws refuses the publish with FORBIDDEN', async (t) => {
  const app = await build(t, { authorizePublish: async () => { throw new Error('db down') } })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'publish', room: 'public:a', event: 'e', data: 1, ref: 1 }), { op: 'error', code: 'FORBIDDEN', ref: 1 })
})

t.test('a connection may be in at most maxRoomsPerConnection rooms', async (t) => {
  const app = await build(t, { maxRoomsPerConnection: 2 })
  const { frames } = await connected(t, app)
  await frames.request({ op: 'join', room: 'public:1' })
  await frames.request({ op: 'join', room: 'public:2' })
  t.match(await frames.request({ op: 'join', room: 'public:3', ref: 3 }), { op: 'error', code: 'FORBIDDEN', ref: 3, message: /at most 2/ })
  t.match(await frames.request({ op: 'join', room: 'public:2' }), { op: 'joined' }, 'a room already joined is fine')
  await frames.request({ op: 'leave', room: 'public:1' })
  t.match(await frames.request({ op: 'join', room: 'public:3' }), { op: 'joined' })
})

t.test('an auth frame authenticates an anonymous connection: hello with the user and the ref', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames, hello } = await connected(t, app)
  t.equal(hello.user, null)
  t.same(await frames.request({ op: 'auth', token: await signToken('42'), ref: 'a' }), { op: 'hello', conn: hello.conn, user: '42', ref: 'a' })
  t.match(await frames.request({ op: 'join', room: 'user:42' }), { op: 'joined' })
})

t.test('a bad token in an auth frame gets UNAUTHENTICATED and a close with 1008', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'auth', token: 'not-a-jwt', ref: 'a' }), { op: 'error', code: 'UNAUTHENTICATED', ref: 'a' })
  t.equal((await frames.waitClose()).code, 1008)
})

t.test('an expired token in an auth frame is refused the same way', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'auth', token: await signToken('42', { expiresInS: -60 }) }), { op: 'error', code: 'UNAUTHENTICATED', message: /expired/ })
  t.equal((await frames.waitClose()).code, 1008)
})

t.test('an authenticate that returns no user for an auth frame\'s token refuses it', async (t) => {
  const app = await build(t, { authenticate: (token) => token === 'good' ? { id: '1' } : null })
  const { frames } = await connected(t, app)
  t.match(await frames.request({ op: 'auth', token: 'bad' }), { op: 'error', code: 'UNAUTHENTICATED' })
  t.equal((await frames.waitClose()).code, 1008)
  const again = await connected(t, app)
  t.match(await again.frames.request({ op: 'auth', token: 'good' }), { op: 'hello', user: '1' }, 'a synchronous authenticate works')
})

t.test('auth must be the first frame and only once', async (t) => {
  const app = await build(t, { authenticate: jwt })
  const { frames } = await connected(t, app)
  await frames.request({ op: 'ping' })
  t.match(await frames.request({ op: 'auth', token: await signToken('42'), ref: 1 }), { op: 'error', code: 'BAD_MESSAGE', ref: 1, message: /first/ })
  const { frames: authed } = await connected(t, app, `/ws?token=${await signToken('42')}`)
  t.match(await authed.request({ op: 'auth', token: await signToken('42') }), { op: 'error', code: 'BAD_MESSAGE', message: /already/ })
  t.match(await authed.request({ op: 'auth' }), { op: 'error', code: 'BAD_MESSAGE', message: /token/ })
})

t.test('without an authenticate option an auth frame leaves the connection anonymous', async (t) => {
  const app = await build(t)
  const { frames, hello } = await connected(t, app)
  t.same(await frames.request({ op: 'auth', token: 'anything', ref: 1 }), { op: 'hello', conn: hello.conn, user: null, ref: 1 })
})

t.test('frames sent while async auth runs are handled after it, in order, none lost', async (t) => {
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  const app = await build(t, {
    authenticate: async (token) => {
      if (token === null) return null
      await gate
      return { id: token }
    }
  })
  const { frames } = await connected(t, app)
  frames.send({ op: 'auth', token: '42', ref: 'a' })
  frames.send({ op: 'join', room: 'user:42', ref: 'j' })
  for (let i = 0; i < 5; i++) frames.send({ op: 'ping', ref: i })
  frames.send({ op: 'join', room: 'public:x', ref: 'k' })
  await waitFor(() => release !== undefined)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(frames.unread, [], 'nothing answered while auth runs')
  release?.()
  t.match(await frames.next(), { op: 'hello', user: '42', ref: 'a' })
  t.same(await frames.next(), { op: 'joined', room: 'user:42', ref: 'j' }, 'the join waited for the user')
  for (let i = 0; i < 5; i++) t.same(await frames.next(), { op: 'pong', ref: i })
  t.same(await frames.next(), { op: 'joined', room: 'public:x', ref: 'k' })
})

t.test('resume: joining with since replays exactly the missed events in order after joined recovered:true', async (t) => {
  const app = await build(t)
  const first = publishOf(app, 'public:r', 'e', 1)
  const second = publishOf(app, 'public:r', 'e', 2)
  publishOf(app, 'public:other', 'e', 'elsewhere')
  const third = publishOf(app, 'public:r', 'e', 3)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:r', since: first, ref: 'r' }), { op: 'joined', room: 'public:r', ref: 'r', recovered: true })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 2, id: second })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 3, id: third })
  const live = publishOf(app, 'public:r', 'e', 4)
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 4, id: live })
})

t.test('resume from the latest id is recovered with nothing to replay', async (t) => {
  const app = await build(t)
  const last = publishOf(app, 'public:r', 'e', 1)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:r', since: last }), { op: 'joined', room: 'public:r', recovered: true })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' })
})

t.test('resume past the history reports recovered:false and sends what is still retained', async (t) => {
  const app = await build(t, {}, { historySize: 2 })
  const ids = [1, 2, 3, 4, 5].map((n) => publishOf(app, 'public:r', 'e', n))
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:r', since: ids[0] }), { op: 'joined', room: 'public:r', recovered: false })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 4, id: ids[3] })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 5, id: ids[4] })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' })
})

t.test('resume from an id of another server lifetime is not recovered', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  t.same(await frames.request({ op: 'join', room: 'public:r', since: 'zzzz-12' }), { op: 'joined', room: 'public:r', recovered: false })
})

t.test('resume with an asynchronous history: events published meanwhile come once, after the replay', async (t) => {
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  class SlowHistoryBus extends MemoryBus {
    override history (room: string, sinceId: string) {
      const result = super.history(room, sinceId)
      return gate.then(() => result) as never
    }
  }
  const app = await build(t, {}, { bus: new SlowHistoryBus({ historySize: 10 }) })
  const first = publishOf(app, 'public:r', 'e', 1)
  const second = publishOf(app, 'public:r', 'e', 2)
  const { frames } = await connected(t, app)
  frames.send({ op: 'join', room: 'public:r', since: first })
  await waitFor(() => app.rooms.size('public:r') === 1, 5000, 'member joined')
  const during = publishOf(app, 'public:r', 'e', 3)
  release?.()
  t.same(await frames.next(), { op: 'joined', room: 'public:r', recovered: true })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 2, id: second })
  t.same(await frames.next(), { op: 'event', room: 'public:r', event: 'e', data: 3, id: during })
  t.same(await frames.request({ op: 'ping' }), { op: 'pong' }, 'no duplicate')
})

t.test('frames beyond the rate limit get RATE_LIMITED with the ref', async (t) => {
  const app = await build(t, { ratePerSec: 1, rateBurst: 3 })
  const { frames } = await connected(t, app)
  for (let i = 0; i < 4; i++) frames.send({ op: 'ping', ref: i })
  for (let i = 0; i < 3; i++) t.same(await frames.next(), { op: 'pong', ref: i })
  t.match(await frames.next(), { op: 'error', code: 'RATE_LIMITED', ref: 3 })
})

t.test('sustained abuse of the rate limit closes the connection with 1008', async (t) => {
  const app = await build(t, { ratePerSec: 1, rateBurst: 2 })
  const { frames } = await connected(t, app)
  for (let i = 0; i < 10; i++) frames.send({ op: 'ping', ref: i })
  await frames.until((f) => f.code === 'RATE_LIMITED')
  t.equal((await frames.waitClose()).code, 1008)
  t.ok(frames.all.filter((f) => f.code === 'RATE_LIMITED').length <= 3, 'closed after the strikes ran out')
})

t.test('a frame over maxPayload closes the connection with 1009', async (t) => {
  const app = await build(t, { maxPayload: 256 })
  const { frames } = await connected(t, app)
  frames.send({ op: 'publish', room: 'public:a', event: 'e', data: 'x'.repeat(400) })
  t.equal((await frames.waitClose()).code, 1009)
})

t.test('with a larger shared server limit the gateway\'s own maxPayload answers TOO_LARGE and closes with 1009', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(websocket, { options: { maxPayload: 1024 * 1024, closeTimeout: 200 } as never })
  await app.register(wsGateway, { maxPayload: 256 })
  await app.ready()
  const { frames } = await connected(t, app)
  frames.send({ op: 'publish', room: 'public:a', event: 'e', data: 'x'.repeat(400) })
  t.match(await frames.next(), { op: 'error', code: 'TOO_LARGE' })
  t.equal((await frames.waitClose()).code, 1009)
})

t.test('a disallowed Origin is refused with 403 before the upgrade; no Origin and same-origin pass', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://app.example'] })
  await t.rejects(connect(t, app, '/ws', { headers: { origin: 'https://evil.example', host: 'api.example' } }), /403/)
  await connected(t, app, '/ws', { headers: { origin: 'https://app.example', host: 'api.example' } })
  // same origin is scheme, host and port: this request came over plain http
  await connected(t, app, '/ws', { headers: { origin: 'http://api.example', host: 'api.example' } })
  await t.rejects(connect(t, app, '/ws', { headers: { origin: 'https://api.example', host: 'api.example' } }), /403/, 'another scheme is another origin')
  await connected(t, app, '/ws', { headers: { host: 'api.example' } })
})

t.test('a bad or expired token is refused with 401 before the upgrade', async (t) => {
  const app = await build(t, { authenticate: jwt })
  await t.rejects(connect(t, app, '/ws?token=garbage'), /401/)
  await t.rejects(connect(t, app, `/ws?token=${await signToken('42', { expiresInS: -60 })}`), /401/)
  await t.rejects(connect(t, app, `/ws?token=${await signToken('42', {}, 'another-secret-of-sufficient-length!!')}`), /401/)
  await t.rejects(connect(t, app, '/ws', { headers: { authorization: 'Bearer nope' } }), /401/, 'a Bearer header counts too')
  await connected(t, app, '/ws', { headers: { authorization: `Bearer ${await signToken('42')}` } })
})

t.test('an authenticate that returns no user for a given token refuses with 401; one that refuses anonymous too', async (t) => {
  const app = await build(t, { authenticate: (token) => token === 'good' ? { id: '1' } : null })
  await t.rejects(connect(t, app, '/ws?token=bad'), /401/)
  const { hello } = await connected(t, app, '/ws?token=good')
  t.equal(hello.user, '1')
  const closed = await build(t, { authenticate: (token) => { if (token === null) throw new Error('login first'); return { id: token } } })
  await t.rejects(connect(t, closed, '/ws'), /401/)
})

t.test('an address at maxConnectionsPerIp is refused with 429 until one of its connections closes', async (t) => {
  const app = await build(t, { maxConnectionsPerIp: 1 })
  const { frames } = await connected(t, app)
  await t.rejects(connect(t, app), /429/)
  await connected(t, app, '/ws', { socket: { remoteAddress: '10.0.0.2' } })
  frames.ws.terminate()
  await waitFor(() => app.websocketServer.clients.size === 1, 5000, 'server saw the close')
  await connected(t, app)
})

t.test('the path is an option', async (t) => {
  const app = await build(t, { path: '/live' })
  const { hello } = await connected(t, app, '/live')
  t.equal(hello.op, 'hello')
  await t.rejects(connect(t, app, '/ws'), /404/)
})

t.test('invalid options fail register with an error naming the option', async (t) => {
  for (const [options, pattern] of [
    [{ maxPayload: 'big' }, /maxPayload/],
    [{ authenticate: 'yes' }, /authenticate: must be a function/],
    [{ unknownThing: 1 }, /unknown option "unknownThing"/],
    [{ path: 'ws' }, /path/]
  ] as const) {
    const app = Fastify()
    t.after(() => app.close())
    await t.rejects(async () => { await app.register(wsGateway, options as never); await app.ready() }, { code: 'GW_INVALID_OPTIONS', message: pattern })
  }
})

t.test('closing a connection removes it from its rooms', async (t) => {
  const app = await build(t)
  const { frames } = await connected(t, app)
  await frames.request({ op: 'join', room: 'public:a' })
  await frames.request({ op: 'join', room: 'public:b' })
  t.equal(app.rooms.size('public:a'), 1)
  frames.ws.close(1000)
  await waitFor(() => app.rooms.size('public:a') === 0 && app.rooms.size('public:b') === 0, 5000, 'rooms emptied')
  t.same([app.rooms.size('public:a'), app.rooms.size('public:b')], [0, 0], 'left every room')
})
