import t, { type Test } from 'tap'
import { connect, GatewayError, type GatewayClient, type ConnectOptions } from '../public/client.js'

// The ws client of public/client.js against a scripted fake WebSocket: every frame it sends is recorded and the test
// plays the server, so reconnects, resumes, duplicates and errors happen exactly when the test says.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- frames as the scripted server reads them, nested fields included
interface Frame { op: string, [key: string]: any }

async function until (what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

function fakeServer () {
  const sockets: FakeSocket[] = []
  class FakeSocket {
    readyState = 0
    sent: Frame[] = []
    onopen: ((e: unknown) => void) | null = null
    onmessage: ((e: { data: string }) => void) | null = null
    onclose: ((e: { code: number, reason: string }) => void) | null = null
    onerror: ((e: unknown) => void) | null = null
    closedWith: { code?: number, reason?: string } | null = null

    constructor (readonly url: string) {
      sockets.push(this)
    }

    send (text: string) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open')
      this.sent.push(JSON.parse(text))
    }

    close (code?: number, reason?: string) {
      if (this.readyState >= 2) return
      this.readyState = 2
      this.closedWith = { code, reason }
      setTimeout(() => {
        this.readyState = 3
        this.onclose?.({ code: code ?? 1005, reason: reason ?? '' })
      }, 0)
    }

    // ---- the server's side ----
    accept (hello: Frame | null = { op: 'hello', conn: 'c-1', user: null }) {
      this.readyState = 1
      this.onopen?.({})
      if (hello !== null) this.push(hello)
    }

    push (frame: Frame | string) {
      this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) })
    }

    drop (code = 1006) {
      this.readyState = 3
      this.onclose?.({ code, reason: '' })
    }

    frames (op: string) {
      return this.sent.filter((f) => f.op === op)
    }

    /** answers every join sent so far that has no answer yet */
    joinAll (recovered?: boolean) {
      for (const f of this.frames('join')) {
        if (this.answered.has(f.ref)) continue
        this.answered.add(f.ref)
        this.push({ op: 'joined', room: f.room, ref: f.ref, ...(f.since === undefined || recovered === undefined ? {} : { recovered }) })
      }
    }

    answered = new Set<string>()
  }
  const socket = async (n: number) => {
    await until(`socket #${n}`, () => sockets.length >= n)
    return sockets[n - 1]
  }
  return { FakeSocket, sockets, socket }
}

function client (t: Test, options: ConnectOptions = {}) {
  const server = fakeServer()
  const c = connect('ws://gateway.test/ws', {
    WebSocket: server.FakeSocket,
    pingMs: 0,
    backoff: { baseMs: 1, maxMs: 4, jitter: 0 },
    ...options
  })
  t.after(() => c.close())
  return { c, ...server }
}

function collect (c: GatewayClient, event = '*') {
  const got: Array<{ data: unknown, room: string, event: string, id: string }> = []
  c.on(event, (data, meta) => { got.push({ data, ...meta }) })
  return got
}

t.test('the token goes in an auth frame by default: first frame auth, then the joins; the URL carries no token', async (t) => {
  const { c, socket } = client(t, { token: 'tok-1' })
  const joined = c.join('public:a')
  const s = await socket(1)
  t.equal(s.url, 'ws://gateway.test/ws')
  s.accept()
  t.same(s.sent.map((f) => f.op), ['auth', 'join'])
  t.match(s.sent[0], { op: 'auth', token: 'tok-1' })
  t.equal(c.status, 'connecting', 'the anonymous hello before the auth answer is not the connection being ready')
  s.push({ op: 'hello', conn: 'c-1', user: '42', ref: s.sent[0].ref })
  t.equal(c.status, 'open')
  t.equal(c.user, '42')
  t.equal(c.conn, 'c-1')
  s.joinAll()
  t.same(await joined, { room: 'public:a', recovered: null })
  t.same(await c.join('public:a'), { room: 'public:a', recovered: null }, 'joining again resolves at once')
  t.same(c.rooms.get('public:a'), { joined: true, lastId: null, recovered: null })
})

t.test('auth "query" puts the token on the URL and sends no auth frame; no token means anonymous', async (t) => {
  const { c, socket } = client(t, { token: 'a b', auth: 'query' })
  const s = await socket(1)
  t.equal(s.url, 'ws://gateway.test/ws?token=a+b')
  s.accept()
  t.same(s.sent, [])
  t.equal(c.status, 'open')
  t.equal(c.user, null)
  const anonymous = client(t, { token: () => null })
  const a = await anonymous.socket(1)
  a.accept()
  t.same(a.sent, [], 'no auth frame without a token')
})

t.test('a token function is asked again before every connection attempt (a fresh token per reconnect)', async (t) => {
  let n = 0
  const { socket } = client(t, { token: async () => `tok-${++n}` })
  const first = await socket(1)
  first.accept()
  t.equal(first.sent[0].token, 'tok-1')
  first.drop()
  const second = await socket(2)
  second.accept()
  t.equal(second.sent[0].token, 'tok-2')
})

t.test('events reach on(name), the catch-all and room filters; unsubscribe and off stop them', async (t) => {
  const { c, socket } = client(t)
  const all = collect(c)
  const notes = collect(c, 'note')
  const onlyB: string[] = []
  c.on('note', (_data, meta) => { onlyB.push(meta.id) }, { room: 'b' })
  const removed: string[] = []
  const off = c.on('note', (_d, meta) => { removed.push(meta.id) })
  const handler = (_d: unknown, meta: { id: string }) => { removed.push(meta.id) }
  c.on('other', handler)
  c.join('a')
  c.join('b')
  const s = await socket(1)
  s.accept()
  s.joinAll()
  off()
  c.off('other', handler)
  c.off('missing', handler)
  s.push({ op: 'event', room: 'a', event: 'note', data: { n: 1 }, id: 'e-1' })
  s.push({ op: 'event', room: 'b', event: 'note', data: { n: 2 }, id: 'e-2' })
  s.push({ op: 'event', room: 'b', event: 'other', data: null, id: 'e-3' })
  s.push({ op: 'event', room: 'not-joined', event: 'note', data: null, id: 'e-4' })
  t.same(all, [
    { data: { n: 1 }, room: 'a', event: 'note', id: 'e-1' },
    { data: { n: 2 }, room: 'b', event: 'note', id: 'e-2' },
    { data: null, room: 'b', event: 'other', id: 'e-3' }
  ], 'an event of a room not joined is not delivered')
  t.same(notes.map((e) => e.id), ['e-1', 'e-2'])
  t.same(onlyB, ['e-2'])
  t.same(removed, [])
  t.same(c.eventNames.sort(), ['*', 'note', 'other'])
  t.throws(() => c.on('', () => {}), TypeError)
  t.throws(() => c.on('x', null as never), TypeError)
})

t.test('after a drop it reconnects and rejoins every room with since = the last id seen in that room', async (t) => {
  const statuses: string[] = []
  const { c, socket } = client(t, { onStatus: (status) => { statuses.push(status) } })
  c.join('a')
  c.join('b')
  c.join('c')
  const s1 = await socket(1)
  s1.accept()
  s1.joinAll()
  s1.push({ op: 'event', room: 'a', event: 'x', data: 1, id: 'e-1' })
  s1.push({ op: 'event', room: 'b', event: 'x', data: 2, id: 'e-2' })
  s1.push({ op: 'event', room: 'a', event: 'x', data: 3, id: 'e-3' })
  s1.drop(1001)
  t.equal(c.status, 'reconnecting')
  t.equal(c.rooms.get('a')?.joined, false, 'not joined while disconnected')
  const s2 = await socket(2)
  s2.accept()
  const joins = Object.fromEntries(s2.frames('join').map((f) => [f.room, f.since]))
  t.same(joins, { a: 'e-3', b: 'e-2', c: undefined }, 'each room from its own last id; never another room\'s id')
  t.notOk('since' in s2.frames('join').find((f) => f.room === 'c')!, 'a room without events rejoins without since')
  s2.joinAll(true)
  t.equal(c.recovered('a'), true)
  t.equal(c.recovered('nope'), null)
  t.same(c.rooms.get('a'), { joined: true, lastId: 'e-3', recovered: true })
  t.same(statuses, ['open', 'reconnecting', 'open'])
})

t.test('recovered:false calls the gap callbacks with the room and the since that could not be served', async (t) => {
  const gaps: unknown[] = []
  const { c, socket } = client(t, { onGap: (gap) => { gaps.push(['option', gap]) } })
  const off = c.onGap((gap) => { gaps.push(['method', gap]) })
  c.join('a')
  const s1 = await socket(1)
  s1.accept()
  s1.joinAll()
  s1.push({ op: 'event', room: 'a', event: 'x', data: 1, id: 'e-5' })
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  s2.joinAll(false)
  t.same(gaps, [['option', { room: 'a', since: 'e-5' }], ['method', { room: 'a', since: 'e-5' }]])
  t.equal(c.recovered('a'), false)
  off()
  s2.drop()
  const s3 = await socket(3)
  s3.accept()
  s3.joinAll(false)
  t.equal(gaps.length, 3, 'the removed callback is not called again')
  t.throws(() => c.onGap('nope' as never), TypeError)
})

t.test('an event already delivered is dropped when the server replays it after a resume: nothing twice', async (t) => {
  const { c, socket } = client(t)
  const got = collect(c)
  c.join('a', { since: 'e-0' })
  const s1 = await socket(1)
  s1.accept()
  t.equal(s1.frames('join')[0].since, 'e-0', 'a first join may resume from a stored id')
  s1.joinAll(true)
  s1.push({ op: 'event', room: 'a', event: 'x', data: 1, id: 'e-1' })
  s1.push({ op: 'event', room: 'a', event: 'x', data: 2, id: 'e-2' })
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  s2.joinAll(true)
  for (const id of ['e-1', 'e-2', 'e-3', 'e-3']) s2.push({ op: 'event', room: 'a', event: 'x', data: id, id })
  t.same(got.map((e) => e.id), ['e-1', 'e-2', 'e-3'])
})

t.test('a room joined with since and no event since then resumes from that same position after a drop', async (t) => {
  const { c, socket } = client(t)
  c.join('a', { since: 'a~7' })
  c.join('b')
  const s1 = await socket(1)
  s1.accept()
  s1.joinAll(true)
  s1.push({ op: 'event', room: 'b', event: 'x', data: 1, id: 'b~1' })
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  t.same(Object.fromEntries(s2.frames('join').map((f) => [f.room, f.since])), { a: 'a~7', b: 'b~1' })
  s2.joinAll(true)
  s2.push({ op: 'event', room: 'a', event: 'x', data: 2, id: 'a~8' })
  s2.drop()
  const s3 = await socket(3)
  s3.accept()
  t.same(Object.fromEntries(s3.frames('join').map((f) => [f.room, f.since])), { a: 'a~8', b: 'b~1' })
})

t.test('a room that got no event before a drop resumes from the position its joined frame gave', async (t) => {
  const { c, socket } = client(t)
  c.join('quiet')
  c.join('kept', { since: 'k-3' })
  const s1 = await socket(1)
  s1.accept()
  t.same(s1.frames('join').map((f) => f.position), [true, true], 'every join asks for the position')
  for (const f of s1.frames('join')) s1.push({ op: 'joined', room: f.room, ref: f.ref, position: f.room === 'quiet' ? 'q-5' : 'k-9', ...(f.since === undefined ? {} : { recovered: true }) })
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  t.same(Object.fromEntries(s2.frames('join').map((f) => [f.room, f.since])), { quiet: 'q-5', kept: 'k-3' },
    'no since: the position; with since the replay follows joined, so the room resumes from what it received')
  s2.push({ op: 'joined', room: 'quiet', ref: s2.frames('join')[0].ref, recovered: true, position: 'q-6' })
  s2.push({ op: 'event', room: 'quiet', event: 'x', data: 1, id: 'q-6' })
  s2.drop()
  const s3 = await socket(3)
  s3.accept()
  t.equal(s3.frames('join').find((f) => f.room === 'quiet')?.since, 'q-6', 'an event seen: its id')
})

t.test('ids are opaque: the client resumes with the last id verbatim and dedupes by equality, whatever the ids look like', async (t) => {
  const { c, socket } = client(t)
  const got = collect(c)
  c.join('a')
  const s1 = await socket(1)
  s1.accept()
  s1.joinAll()
  // not increasing as numbers nor as strings: nothing may be inferred from their form
  for (const id of ['9', '10', '2', '1e3']) s1.push({ op: 'event', room: 'a', event: 'x', data: id, id })
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  t.equal(s2.frames('join')[0].since, '1e3', 'the last id received, not the largest')
  s2.joinAll(true)
  for (const id of ['10', '2', '1e3', '1000', '010']) s2.push({ op: 'event', room: 'a', event: 'x', data: id, id })
  t.same(got.map((e) => e.id), ['9', '10', '2', '1e3', '1000', '010'], '"1000" and "010" are new ids; the others repeats')
})

t.test('publish resolves with the ack id and rejects with the error code of its own ref', async (t) => {
  const { c, socket } = client(t)
  const s = await socket(1)
  s.accept()
  const ok = c.publish('a', 'note', { n: 1 })
  const refused = c.publish('b', 'note', undefined)
  const [p1, p2] = s.frames('publish')
  t.match(p1, { op: 'publish', room: 'a', event: 'note', data: { n: 1 } })
  t.equal(p2.data, null, 'undefined data is sent as null')
  s.push({ op: 'error', code: 'FORBIDDEN', message: 'publishing to room b is not allowed', ref: p2.ref })
  s.push({ op: 'ack', ref: p1.ref, id: 'e-9' })
  t.same(await ok, { id: 'e-9' })
  const err = await refused.then(() => null, (e) => e)
  t.ok(err instanceof GatewayError)
  t.match(err, { code: 'FORBIDDEN', message: 'publishing to room b is not allowed', ref: p2.ref })
  s.push({ op: 'ack', ref: 'unknown', id: 'x' })
  s.push({ op: 'ack', id: 'x' })
})

t.test('a publish made while offline waits and is sent after the rejoins of the next connection', async (t) => {
  const { c, socket } = client(t, { token: 't' })
  c.join('a')
  const published = c.publish('a', 'note', 1)
  const s = await socket(1)
  s.accept()
  t.same(s.sent.map((f) => f.op), ['auth', 'join', 'publish'])
  s.push({ op: 'ack', ref: s.frames('publish')[0].ref, id: 'e-1' })
  t.same(await published, { id: 'e-1' })
})

t.test('a publish in flight when the socket drops rejects DISCONNECTED; one without answer rejects TIMEOUT', async (t) => {
  const { c, socket } = client(t, { ackTimeoutMs: 30 })
  const s1 = await socket(1)
  s1.accept()
  const timedOut = c.publish('a', 'x', 1)
  await t.rejects(timedOut, { code: 'TIMEOUT' })
  const inFlight = c.publish('a', 'x', 2, { timeoutMs: 0 })
  s1.drop()
  await t.rejects(inFlight, { code: 'DISCONNECTED' })
  const queued = c.publish('a', 'x', 3, { timeoutMs: 20 })
  await t.rejects(queued, { code: 'TIMEOUT' }, 'a queued publish times out too')
  const s2 = await socket(2)
  s2.accept()
  t.same(s2.frames('publish'), [], 'and is not sent after it timed out')
})

t.test('publish refuses what cannot be sent: data that is not JSON, a full offline queue', async (t) => {
  const { c } = client(t, { maxQueue: 1 })
  await t.rejects(c.publish('a', 'x', { n: 1n }), { code: 'BAD_MESSAGE' })
  const first = c.publish('a', 'x', 1, { timeoutMs: 0 })
  await t.rejects(c.publish('a', 'x', 2), { code: 'QUEUE_FULL' })
  void first.catch(() => {})
})

t.test('a refused join rejects with the server code and the room is not rejoined; a refused rejoin goes to onError', async (t) => {
  const errors: GatewayError[] = []
  const { c, socket } = client(t, { onError: (err) => { errors.push(err) } })
  const forbidden = c.join('secret')
  c.join('user:42')
  const s1 = await socket(1)
  s1.accept()
  const [secret] = s1.frames('join')
  s1.push({ op: 'error', code: 'FORBIDDEN', message: 'room secret is not allowed', ref: secret.ref })
  await t.rejects(forbidden, { code: 'FORBIDDEN', room: 'secret' })
  t.match(errors, [{ code: 'FORBIDDEN', room: 'secret' }], 'also reported to onError (a join is often not awaited)')
  s1.joinAll()
  s1.drop()
  const s2 = await socket(2)
  s2.accept()
  const rejoins = s2.frames('join')
  t.same(rejoins.map((f) => f.room), ['user:42'], 'the refused room is not retried')
  s2.push({ op: 'error', code: 'FORBIDDEN', message: 'room user:42 is not allowed', ref: rejoins[0].ref })
  t.match(errors.slice(1), [{ code: 'FORBIDDEN', room: 'user:42' }], 'a refused rejoin: reported to onError')
  t.notOk(c.rooms.has('user:42'))
})

t.test('leave resolves at left, also when the server says NOT_FOUND or the socket drops, and the room is not rejoined', async (t) => {
  const { c, socket } = client(t)
  const pendingJoin = c.join('offline')
  await c.leave('offline')
  await t.rejects(pendingJoin, { code: 'LEFT' }, 'a join still waiting is cancelled')
  await c.leave('never-joined')
  c.join('a')
  c.join('b')
  c.join('c')
  const s1 = await socket(1)
  s1.accept()
  s1.joinAll()
  const leaveA = c.leave('a')
  const leaveB = c.leave('b')
  const leaveC = c.leave('c')
  const [la, lb] = s1.frames('leave')
  s1.push({ op: 'left', room: 'a', ref: la.ref })
  s1.push({ op: 'error', code: 'NOT_FOUND', message: 'not a member of room b', ref: lb.ref })
  s1.push({ op: 'event', room: 'c', event: 'x', data: 1, id: 'late' })
  s1.drop()
  await Promise.all([leaveA, leaveB, leaveC])
  c.join('d')
  const s2 = await socket(2)
  s2.accept()
  t.same(s2.frames('join').map((f) => f.room), ['d'])
  const late = collect(c)
  t.same(late, [])
})

t.test('a leave refused for another reason rejects', async (t) => {
  const { c, socket } = client(t)
  c.join('a')
  const s = await socket(1)
  s.accept()
  s.joinAll()
  const leaving = c.leave('a')
  s.push({ op: 'error', code: 'RATE_LIMITED', message: 'slow down', ref: s.frames('leave')[0].ref })
  await t.rejects(leaving, { code: 'RATE_LIMITED' })
})

t.test('close() ends for good: no reconnect, waiting promises reject CLOSED, later calls reject', async (t) => {
  const statuses: string[] = []
  const { c, socket, sockets } = client(t, { onStatus: (s) => { statuses.push(s) } })
  const s = await socket(1)
  s.accept()
  const join = c.join('a')
  const publish = c.publish('a', 'x', 1)
  const closing = c.close()
  t.equal(c.close(), closing, 'closing twice is the same promise')
  await t.rejects(join, { code: 'CLOSED' })
  await t.rejects(publish, { code: 'CLOSED' })
  await closing
  t.same(s.closedWith, { code: 1000, reason: 'client closed' })
  t.equal(c.status, 'closed')
  t.same(statuses, ['open', 'closed'])
  await t.rejects(c.join('b'), { code: 'CLOSED' })
  await t.rejects(c.publish('a', 'x', 1), { code: 'CLOSED' })
  c.reconnect()
  // a reconnect that started would have said so at once (status 'reconnecting'), before opening anything
  t.equal(c.status, 'closed', 'reconnect() on a closed client changes nothing')
  t.equal(sockets.length, 1, 'nothing reopens')
})

t.test('close() before the socket opened, and while waiting to reconnect', async (t) => {
  const { c } = client(t)
  await c.close()
  t.equal(c.status, 'closed')
  const second = client(t, { backoff: { baseMs: 10_000, jitter: 0 } })
  const s = await second.socket(1)
  s.drop()
  t.equal(second.c.status, 'reconnecting')
  await second.c.close()
  t.equal(second.c.status, 'closed')
  t.equal(second.sockets.length, 1)
})

t.test('close() does not wait forever for a peer that never completes the closing handshake', async (t) => {
  const { c, socket } = client(t, { closeTimeoutMs: 20 })
  const s = await socket(1)
  s.accept()
  s.close = () => {} // a vanished server: no close event ever comes
  await c.close()
  t.equal(c.status, 'closed', 'gave up waiting after closeTimeoutMs')
})

t.test('reconnect: false closes for good after a drop; maxRetries gives up after that many failed attempts', async (t) => {
  const { c, socket } = client(t, { reconnect: false })
  const join = c.join('a')
  const s = await socket(1)
  s.drop(1006)
  await t.rejects(join, { code: 'CLOSED' })
  t.equal(c.status, 'closed')
  await c.close()

  const limited = client(t, { maxRetries: 2 })
  ;(await limited.socket(1)).drop()
  ;(await limited.socket(2)).drop()
  ;(await limited.socket(3)).drop()
  t.equal(limited.c.status, 'closed')
  t.equal(limited.sockets.length, 3, 'the first attempt and two retries')
})

t.test('backoff delays grow while attempts fail and start over after a good connection', async (t) => {
  const delays: number[] = []
  const { socket } = client(t, {
    backoff: { baseMs: 2, maxMs: 100, jitter: 0 },
    onStatus: (status, detail) => { if (status === 'reconnecting') delays.push(detail.delayMs as number) }
  })
  ;(await socket(1)).drop()
  ;(await socket(2)).drop()
  ;(await socket(3)).drop()
  const s4 = await socket(4)
  s4.accept()
  s4.drop()
  await socket(5)
  t.same(delays, [2, 4, 8, 2])
})

t.test('reconnect() drops the socket now and connects again at once', async (t) => {
  const { c, socket, sockets } = client(t, { backoff: { baseMs: 10_000, jitter: 0 } })
  const s1 = await socket(1)
  s1.accept()
  c.reconnect()
  c.reconnect()
  const s2 = await socket(2)
  t.ok(s1.closedWith !== null, 'the old socket was closed')
  s2.accept()
  t.equal(c.status, 'open')
  s2.drop()
  t.equal(c.status, 'reconnecting', 'waiting 10 s for the next attempt')
  c.reconnect()
  const s3 = await socket(3)
  s3.accept()
  // a later event: once the third socket is open and answered a ping, anything else reconnect() started has too
  const rtt = c.ping()
  s3.push({ op: 'pong', ref: s3.frames('ping')[0].ref })
  await rtt
  t.equal(sockets.length, 3, 'one socket per reconnect() (a second call while opening is ignored)')
})

t.test('a ping without answer for a whole interval drops the socket and reconnects; any frame counts as an answer', async (t) => {
  // 250 ms: with 25 ms a loop stalled between the second ping and the assertion saw the third tick drop the socket
  const { c, socket } = client(t, { pingMs: 250 })
  const s1 = await socket(1)
  s1.accept()
  await until('a ping', () => s1.frames('ping').length === 1)
  s1.push({ op: 'pong' })
  await until('a second ping', () => s1.frames('ping').length === 2)
  t.equal(c.status, 'open', 'answered: still connected')
  await socket(2)
  t.ok(s1.closedWith !== null, 'the silent socket was closed')
})

t.test('ping() resolves with the round trip time', async (t) => {
  const { c, socket } = client(t)
  const s = await socket(1)
  s.accept()
  const rtt = c.ping()
  s.push({ op: 'pong', ref: s.frames('ping')[0].ref })
  t.type(await rtt, 'number')
})

t.test('errors without a ref, a refused auth frame and a failing token function go to onError', async (t) => {
  const errors: GatewayError[] = []
  let fail = true
  const { c, socket } = client(t, {
    token: () => {
      if (fail) {
        fail = false
        throw new Error('no session')
      }
      return 'tok'
    }
  })
  c.onError((err) => { errors.push(err) })
  const s = await socket(1)
  t.match(errors, [{ code: 'TOKEN' }], 'the failed token function was reported and retried')
  s.accept()
  s.push({ op: 'error', code: 'UNAUTHENTICATED', message: 'token expired', ref: s.sent[0].ref })
  s.push({ op: 'error', code: 'RATE_LIMITED', message: 'slow down' })
  s.push({ op: 'error' })
  s.push('not json')
  s.push('null')
  s.push({ op: 'unknown-op' })
  t.match(errors.slice(1), [{ code: 'UNAUTHENTICATED' }, { code: 'RATE_LIMITED' }, { code: 'ERROR' }])
  t.throws(() => c.onError(undefined as never), TypeError)
})

t.test('a WebSocket constructor that throws is reported and retried', async (t) => {
  let calls = 0
  const server = fakeServer()
  class Throwing extends server.FakeSocket {
    constructor (url: string) {
      if (++calls === 1) throw new Error('blocked')
      super(url)
    }
  }
  const errors: string[] = []
  const c = connect('http://gateway.test/ws', { WebSocket: Throwing, pingMs: 0, backoff: { baseMs: 1, jitter: 0 }, onError: (e) => { errors.push(e.code) } })
  t.after(() => c.close())
  const s = await server.socket(1)
  t.equal(s.url, 'ws://gateway.test/ws', 'an http URL is turned into ws')
  t.same(errors, ['NETWORK'])
  t.equal(c.url, 'ws://gateway.test/ws')
})

t.test('a listener that throws is reported and the others still get the event', async (t) => {
  const reported: unknown[] = []
  const original = (globalThis as unknown as Record<string, unknown>).reportError
  ;(globalThis as unknown as Record<string, unknown>).reportError = (err: unknown) => { reported.push(err) }
  t.after(() => { (globalThis as unknown as Record<string, unknown>).reportError = original })
  const { c, socket } = client(t, { onStatus: () => { throw new Error('status listener') } })
  c.on('x', () => { throw new Error('event listener') })
  const got = collect(c)
  c.join('a')
  const s = await socket(1)
  s.accept()
  s.joinAll()
  s.push({ op: 'event', room: 'a', event: 'x', data: 1, id: 'e-1' })
  t.equal(got.length, 1)
  t.same(reported.map((e) => (e as Error).message), ['status listener', 'event listener'])
})

t.test('without reportError a throwing listener surfaces as an uncaught error after the delivery', async (t) => {
  const original = (globalThis as unknown as Record<string, unknown>).reportError
  delete (globalThis as unknown as Record<string, unknown>).reportError
  t.after(() => { (globalThis as unknown as Record<string, unknown>).reportError = original })
  const uncaught: unknown[] = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  const catcher = (err: unknown) => { uncaught.push(err) }
  process.on('uncaughtException', catcher)
  t.after(() => {
    process.off('uncaughtException', catcher)
    for (const l of listeners) process.on('uncaughtException', l)
  })
  const { c, socket } = client(t)
  c.on('x', () => { throw new Error('boom') })
  c.join('a')
  const s = await socket(1)
  s.accept()
  s.joinAll()
  s.push({ op: 'event', room: 'a', event: 'x', data: 1, id: 'e-1' })
  await until('the uncaught error', () => uncaught.length === 1)
  t.equal((uncaught[0] as Error).message, 'boom')
})

t.test('options are checked when connecting', async (t) => {
  t.throws(() => connect('ws://h/ws', { auth: 'header' as never, WebSocket: class {} }), TypeError)
  const original = (globalThis as unknown as Record<string, unknown>).WebSocket
  delete (globalThis as unknown as Record<string, unknown>).WebSocket
  t.after(() => { (globalThis as unknown as Record<string, unknown>).WebSocket = original })
  t.throws(() => connect('ws://h/ws'), /no WebSocket implementation/)
  t.throws(() => connect('ftp://h/ws', { WebSocket: class {} }), TypeError)
})

t.test('presence(room) asks the server who is in a joined room: members of every transport and the distinct users', async (t) => {
  const { c, socket } = client(t)
  c.join('public:demo')
  const s = await socket(1)
  s.accept()
  s.joinAll()
  const asked = c.presence('public:demo')
  const [frame] = s.frames('presence')
  t.match(frame, { op: 'presence', room: 'public:demo' })
  s.push({ op: 'presence', room: 'public:demo', members: 4, users: ['u1', 7, 'u2'], ref: frame.ref })
  t.same(await asked, { room: 'public:demo', members: 4, users: ['u1', 'u2'] }, 'only string user ids')
  const odd = c.presence('public:demo')
  s.push({ op: 'presence', room: 'public:demo', ref: s.frames('presence')[1].ref })
  t.same(await odd, { room: 'public:demo', members: 0, users: [] }, 'a malformed answer reads as empty')
  const refused = c.presence('secret')
  s.push({ op: 'error', code: 'FORBIDDEN', message: 'presence of room secret is for its members', ref: s.frames('presence')[2].ref })
  await t.rejects(refused, { code: 'FORBIDDEN' })
  const timedOut = c.presence('public:demo', { timeoutMs: 5 })
  await t.rejects(timedOut, { code: 'TIMEOUT' })
})

t.test('frames a server should not send are ignored or read safely; nothing throws', async (t) => {
  const errors: GatewayError[] = []
  const { c, socket } = client(t, { onError: (err) => { errors.push(err) }, dedupeWindow: 2 })
  const got = collect(c)
  c.join('a')
  const s = await socket(1)
  s.readyState = 1
  s.onopen?.({})
  // a frame that is not a string (a Buffer-like object of a Node WebSocket) is read through String()
  s.onmessage?.({ data: { toString: () => JSON.stringify({ op: 'hello' }) } } as unknown as { data: string })
  t.equal(c.conn, null, 'a hello without conn')
  t.equal(c.user, null, 'a hello without user is anonymous')
  t.equal(c.status, 'open')
  for (const junk of ['[1,2]', 'null', '"text"', '{"op":5}', '{"op":"joined"}', '{"op":"ack","ref":"nope","id":"x"}', '{"op":"pong"}',
    '{"op":"event","room":"a"}', '{"op":"event","event":"x","id":"1"}', '{"op":"left","ref":7}']) s.push(junk)
  s.joinAll()
  t.same(c.rooms.get('a'), { joined: true, lastId: null, recovered: null })
  s.push({ op: 'event', room: 'a', event: 'x', data: 1 })
  s.push({ op: 'event', room: 'a', event: 'x', data: 2 })
  t.same(got.map((e) => e.data), [1, 2], 'events without id cannot be deduplicated: both delivered')
  for (const id of ['1', '2', '3', '1']) s.push({ op: 'event', room: 'a', event: 'x', data: id, id })
  t.same(got.map((e) => e.data), [1, 2, '1', '2', '3', '1'], 'a window of 2 ids: the oldest is forgotten')
  s.push({ op: 'error', ref: 12 })
  s.push({ op: 'error', code: 'FORBIDDEN', message: 'm', ref: 'unknown-ref' })
  t.match(errors, [{ code: 'ERROR', message: 'error', ref: 12 }, { code: 'FORBIDDEN', ref: 'unknown-ref' }], 'errors nobody waits for go to onError')
  const published = c.publish('a', 'x')
  const frame = s.frames('publish')[0]
  t.equal(frame.data, null, 'undefined data is sent as null')
  s.push({ op: 'ack', ref: frame.ref })
  t.same(await published, { id: '' }, 'an ack without id')
})

t.test('close() before the socket exists, with a socket whose close throws, and a token function that returns no string', async (t) => {
  let release!: (token: string) => void
  const pending = client(t, { token: () => new Promise<string>((resolve) => { release = resolve }) })
  await pending.c.close()
  t.equal(pending.c.status, 'closed', 'closed while the token was on its way')
  release('late')
  // the token arrives through promise callbacks only: once the next macrotask runs, they all have
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(pending.sockets.length, 0, 'and no socket is opened after')

  const errors: string[] = []
  let calls = 0
  const odd = client(t, {
    token: (() => ++calls === 1 ? 42 : 'tok') as unknown as () => string,
    onError: (err) => { errors.push(`${err.code}: ${err.message}`) }
  })
  const s = await odd.socket(1)
  t.match(errors, [/^TOKEN: the token function failed: a token must be a string$/])
  s.accept(null)
  t.same(s.sent[0], { op: 'auth', token: 'tok', ref: s.sent[0].ref }, 'retried with a string')
  s.close = () => { throw new Error('broken socket') }
  odd.c.reconnect()
  await odd.socket(2)
  t.equal(odd.c.status, 'reconnecting', 'a socket that cannot be closed is dropped anyway')
})

t.test('token refresh: asked by the server, the client sends a fresh token from its token function on the live connection', async (t) => {
  let n = 0
  const errors: GatewayError[] = []
  const { c, socket, sockets } = client(t, { token: () => `tok-${++n}`, onError: (err) => { errors.push(err) } })
  c.join('a')
  c.join('b')
  const s = await socket(1)
  s.accept(null)
  s.push({ op: 'hello', conn: 'c-1', user: 'u1', ref: s.sent[0].ref })
  s.joinAll()
  s.push({ op: 'refresh', exp: 1_900_000_000 })
  await until('the refresh frame', () => s.frames('refresh').length === 1)
  const [asked] = s.frames('refresh')
  t.match(asked, { op: 'refresh', token: 'tok-2' })
  // the new token lost room b: the server leaves it, then answers
  s.push({ op: 'left', room: 'b' })
  s.push({ op: 'refreshed', ref: asked.ref, exp: 1_900_000_600 })
  t.match(errors, [{ code: 'FORBIDDEN', room: 'b', message: /the server left room b/ }])
  t.same([...c.rooms.keys()], ['a'], 'a room the server left is not rejoined')
  const byHand = c.refresh()
  await until('a second refresh', () => s.frames('refresh').length === 2)
  t.equal(s.frames('refresh')[1].token, 'tok-3')
  s.push({ op: 'refreshed', ref: s.frames('refresh')[1].ref, exp: 1_900_000_900 })
  t.same(await byHand, { exp: 1_900_000_900 }, 'refresh() by hand resolves the new expiry')
  const noExpiry = c.refresh()
  await until('a third refresh', () => s.frames('refresh').length === 3)
  s.push({ op: 'refreshed', ref: s.frames('refresh')[2].ref, exp: null })
  t.same(await noExpiry, { exp: null })
  t.equal(sockets.length, 1, 'never a reconnect')
  t.equal(errors.length, 1)
})

t.test('token refresh: a fixed token is not refreshed; a failing token function or a refused token are reported', async (t) => {
  const fixed = client(t, { token: 'fixed' })
  const s1 = await fixed.socket(1)
  s1.accept()
  s1.push({ op: 'refresh', exp: 1 })
  // the positive signal: a ping answered on a later turn of the event loop, after any refresh would have gone out
  const later = fixed.c.ping()
  setTimeout(() => { s1.push({ op: 'pong', ref: s1.frames('ping')[0].ref }) }, 0)
  await later
  t.same(s1.frames('refresh'), [], 'nothing to refresh with: the server ends the connection at expiry')
  const anonymous = client(t)
  await t.rejects(anonymous.c.refresh(), { code: 'TOKEN', message: 'no token to refresh with' })

  let calls = 0
  const errors: GatewayError[] = []
  const failing = client(t, {
    token: () => {
      if (++calls === 2) throw new Error('session ended')
      return `tok-${calls}`
    },
    onError: (err) => { errors.push(err) }
  })
  const s2 = await failing.socket(1)
  s2.accept()
  s2.push({ op: 'refresh', exp: 1 })
  await until('the token error', () => errors.length === 1)
  t.match(errors, [{ code: 'TOKEN', message: 'the token function failed: session ended' }])
  s2.push({ op: 'refresh', exp: 1 })
  await until('the refresh frame', () => s2.frames('refresh').length === 1)
  s2.push({ op: 'error', code: 'UNAUTHENTICATED', message: 'a refreshed token must be for the same user', ref: s2.frames('refresh')[0].ref })
  await until('the refusal', () => errors.length === 2)
  t.match(errors[1], { code: 'UNAUTHENTICATED' })
  s2.push({ op: 'refresh', exp: 1 })
  await until('another refresh frame', () => s2.frames('refresh').length === 2)
  s2.drop(1008)
  await failing.socket(2)
  t.equal(errors.length, 2, 'a refresh cut by the close is not an error of its own: the client reconnects')
})
