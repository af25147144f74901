import t, { type Test } from 'tap'
import { subscribe, type SubscribeOptions, type GatewayError } from '../public/client.js'

// The SSE helper of public/client.js over a scripted fake EventSource (the browser's reconnects are the browser's;
// what the helper adds is the event API, dedupe, gaps and starting over when the browser gives up) and a fake fetch.

async function until (what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

function fakeEventSource () {
  const sources: FakeSource[] = []
  class FakeSource {
    readyState = 0
    onopen: (() => void) | null = null
    onerror: (() => void) | null = null
    listeners = new Map<string, Array<(e: { data: string, lastEventId: string }) => void>>()
    constructor (readonly url: string, readonly init: { withCredentials?: boolean }) {
      sources.push(this)
    }

    addEventListener (name: string, fn: (e: { data: string, lastEventId: string }) => void) {
      const list = this.listeners.get(name) ?? []
      list.push(fn)
      this.listeners.set(name, list)
    }

    close () {
      this.readyState = 2
    }

    // ---- the browser's side ----
    open () {
      this.readyState = 1
      this.onopen?.()
    }

    emit (name: string, data: unknown, lastEventId = '') {
      for (const fn of this.listeners.get(name) ?? []) fn({ data: typeof data === 'string' ? data : JSON.stringify(data), lastEventId })
    }

    fail (giveUp: boolean) {
      this.readyState = giveUp ? 2 : 0
      this.onerror?.()
    }

    params () {
      return new URL(this.url).searchParams
    }
  }
  const source = async (n: number) => {
    await until(`EventSource #${n}`, () => sources.length >= n)
    return sources[n - 1]
  }
  return { FakeSource, sources, source }
}

function jsonResponse (status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}

function setup (t: Test, rooms: string | string[], options: SubscribeOptions = {}) {
  const es = fakeEventSource()
  const fetches: Array<{ url: string, init: RequestInit }> = []
  const answers: Array<Response | Error> = []
  const fetch = async (url: string, init: RequestInit) => {
    fetches.push({ url, init })
    const answer = answers.shift() ?? jsonResponse(500, { message: 'no scripted answer' })
    if (answer instanceof Error) throw answer
    return answer
  }
  const sub = subscribe('http://gateway.test/sse', rooms, {
    EventSource: es.FakeSource,
    fetch: fetch as typeof globalThis.fetch,
    backoff: { baseMs: 1, maxMs: 4, jitter: 0 },
    ...options
  })
  t.after(() => sub.close())
  return { sub, fetches, answers, ...es }
}

t.test('EventSource: the URL lists the rooms, the token and the resume point; named events arrive with room and id', async (t) => {
  const statuses: string[] = []
  const { sub, source } = setup(t, ['public:a', 'public:b', 'public:a'], { token: 'tok', lastEventId: 'e-0', withCredentials: true, onStatus: (s) => { statuses.push(s) } })
  const got: unknown[] = []
  sub.on('note', (data, meta) => { got.push({ data, ...meta }) })
  const onlyB: string[] = []
  sub.on('note', (_d, meta) => { onlyB.push(meta.id) }, { room: 'public:b' })
  const s = await source(1)
  t.same(s.params().getAll('room'), ['public:a', 'public:b'], 'each room once')
  t.equal(s.params().get('token'), 'tok')
  t.equal(s.params().get('lastEventId'), 'e-0')
  t.equal(s.init.withCredentials, true)
  t.same(sub.rooms, ['public:a', 'public:b'])
  s.open()
  t.equal(sub.status, 'open')
  s.emit('note', { room: 'public:a', data: { n: 1 } }, 'e-1')
  s.emit('note', { room: 'public:b', data: { n: 2 } }, 'e-2')
  s.emit('note', { room: 'public:b', data: { n: 2 } }, 'e-2')
  t.same(got, [
    { data: { n: 1 }, room: 'public:a', event: 'note', id: 'e-1' },
    { data: { n: 2 }, room: 'public:b', event: 'note', id: 'e-2' }
  ], 'the repeated id is dropped')
  t.same(onlyB, ['e-2'])
  t.equal(sub.lastEventId, 'e-2')
  const later: string[] = []
  sub.on('later', (_d, meta) => { later.push(meta.id) })
  sub.on('later', () => {})
  s.emit('later', { room: 'public:a', data: null }, 'e-3')
  t.same(later, ['e-3'], 'a handler added after the stream opened is listened to (once per name)')
  t.same(statuses, ['open'])
})

t.test('EventSource: a gap event calls the gap callbacks; the catch-all is refused with a pointer to the fetch transport', async (t) => {
  const gaps: unknown[] = []
  const { sub, source } = setup(t, 'public:a', { onGap: (gap) => { gaps.push(gap) } })
  t.throws(() => sub.on('*', () => {}), /transport: "fetch"/)
  sub.on('note', () => {})
  const s = await source(1)
  s.open()
  s.emit('note', { room: 'public:a', data: 1 }, 'e-7')
  s.emit('gap', { room: 'public:a' })
  s.emit('gap', 'not json')
  t.same(gaps, [{ room: 'public:a', since: 'e-7' }, { room: null, since: 'e-7' }])
})

t.test('EventSource: data that is not JSON is reported, not delivered', async (t) => {
  const errors: GatewayError[] = []
  const { sub, source } = setup(t, 'public:a', { onError: (err) => { errors.push(err) } })
  const got: unknown[] = []
  sub.on('note', (d) => { got.push(d) })
  const s = await source(1)
  s.emit('note', 'not json', 'e-1')
  t.same(got, [])
  t.match(errors, [{ code: 'BAD_MESSAGE' }])
})

t.test('EventSource: while the browser retries by itself the status is reconnecting and no new source is made', async (t) => {
  const statuses: string[] = []
  const { sub, source, sources } = setup(t, 'public:a', { onStatus: (s) => { statuses.push(s) } })
  const s = await source(1)
  s.open()
  s.fail(false)
  t.equal(sub.status, 'reconnecting')
  s.open()
  t.same(statuses, ['open', 'reconnecting', 'open'])
  t.equal(sources.length, 1)
})

t.test('EventSource: when the browser gives up on a 403 the reason is fetched and reported, and it stays closed', async (t) => {
  const errors: GatewayError[] = []
  const { sub, source, answers, fetches, sources } = setup(t, 'secret', { token: 'tok', onError: (err) => { errors.push(err) } })
  answers.push(jsonResponse(403, { statusCode: 403, code: 'GW_SSE_ROOM_FORBIDDEN', error: 'Forbidden', message: 'room "secret" is not allowed' }))
  const s = await source(1)
  s.fail(true)
  await until('closed', () => sub.status === 'closed')
  t.match(errors, [{ code: 'GW_SSE_ROOM_FORBIDDEN', status: 403, message: 'room "secret" is not allowed' }])
  t.equal(new URL(fetches[0].url).searchParams.get('room'), 'secret', 'the same request was asked again')
  t.equal(sources.length, 1)
})

t.test('EventSource: a refused static token stays refused; a token function gets a fresh token and resumes from the last id', async (t) => {
  const fixed = setup(t, 'user:1', { token: 'old' })
  fixed.answers.push(jsonResponse(401, { message: 'token expired' }))
  ;(await fixed.source(1)).fail(true)
  await until('closed', () => fixed.sub.status === 'closed')

  let n = 0
  const errors: GatewayError[] = []
  const refreshing = setup(t, 'user:1', { token: () => `tok-${++n}`, onError: (err) => { errors.push(err) } })
  refreshing.answers.push(jsonResponse(401, { message: 'token expired' }))
  // EventSource only hands over the events it listens to: the resume point is the last id of a handled event
  refreshing.sub.on('x', () => {})
  const s1 = await refreshing.source(1)
  s1.open()
  s1.emit('x', { room: 'user:1', data: 1 }, 'e-4')
  s1.fail(true)
  const s2 = await refreshing.source(2)
  t.equal(s2.params().get('token'), 'tok-2')
  t.equal(s2.params().get('lastEventId'), 'e-4')
  t.match(errors, [{ status: 401, code: 'HTTP_401', message: 'token expired' }])
  s1.emit('x', { room: 'user:1', data: 2 }, 'e-5')
  t.equal(refreshing.sub.lastEventId, 'e-4', 'the old source is ignored')
})

t.test('EventSource: a 503, a network failure or a stream that answered fine start over with backoff', async (t) => {
  const errors: GatewayError[] = []
  const { source, answers } = setup(t, 'public:a', { onError: (err) => { errors.push(err) } })
  answers.push(jsonResponse(503, 'not an object'))
  answers.push(new Error('connection refused'))
  answers.push(new Response('retry: 10\n\n', { status: 200, headers: { 'content-type': 'text/event-stream' } }))
  ;(await source(1)).fail(true)
  ;(await source(2)).fail(true)
  ;(await source(3)).fail(true)
  await source(4)
  t.match(errors, [{ code: 'HTTP_503', status: 503 }, { code: 'NETWORK' }])
})

t.test('EventSource: reconnect false stays closed after the browser gave up; close() stops everything', async (t) => {
  const { sub, source, answers } = setup(t, 'public:a', { reconnect: false })
  answers.push(jsonResponse(503, {}))
  ;(await source(1)).fail(true)
  await until('closed', () => sub.status === 'closed')

  const second = setup(t, 'public:a', { backoff: { baseMs: 10_000, jitter: 0 } })
  second.answers.push(jsonResponse(503, {}))
  const s = await second.source(1)
  s.fail(true)
  await until('waiting to retry', () => second.sub.status === 'reconnecting')
  second.sub.close()
  second.sub.close()
  t.equal(second.sub.status, 'closed')
  t.equal(s.readyState, 2)
})

t.test('a token function that throws is reported and retried', async (t) => {
  let calls = 0
  const errors: string[] = []
  const { source } = setup(t, 'public:a', {
    token: () => {
      if (++calls === 1) throw new Error('no session')
      return 'tok'
    },
    onError: (err) => { errors.push(err.code) }
  })
  const s = await source(1)
  t.equal(s.params().get('token'), 'tok')
  t.same(errors, ['TOKEN'])
})

t.test('subscribe checks its arguments', async (t) => {
  const { FakeSource } = fakeEventSource()
  t.throws(() => subscribe('http://h/sse', [], { EventSource: FakeSource }), /at least one room/)
  t.throws(() => subscribe('http://h/sse', 'a', { transport: 'websocket' as never }), /transport/)
  t.throws(() => subscribe('http://h/sse', 'a'), /no EventSource implementation/, 'Node has no EventSource')
  t.throws(() => subscribe('ftp://h/sse', 'a', { EventSource: FakeSource }), TypeError)
})

// ---- fetch transport ----

function streamResponse (chunks: string[], options: { keepOpen?: boolean } = {}) {
  const encoder = new TextEncoder()
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const body = new ReadableStream<Uint8Array>({
    start (c) {
      controller = c
      for (const chunk of chunks) c.enqueue(encoder.encode(chunk))
      if (options.keepOpen !== true) c.close()
    }
  })
  return {
    response: new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
    push: (chunk: string) => { controller.enqueue(encoder.encode(chunk)) },
    end: () => { controller.close() },
    error: () => { controller.error(new Error('reset')) }
  }
}

t.test('fetch: the token goes in an Authorization header, the catch-all works, a reconnect sends Last-Event-ID', async (t) => {
  const { sub, answers, fetches } = setup(t, ['public:a', 'public:b'], { transport: 'fetch', token: 'tok', withCredentials: true })
  const first = streamResponse(['retry: 1\n\n', 'id: e-1\nevent: note\ndata: {"room":"public:a","data":1}\n\n: ping\n\n'], { keepOpen: true })
  answers.push(first.response)
  const second = streamResponse(['id: e-2\nevent: other\ndata: {"room":"public:b","data":2}\n\n', 'event: gap\ndata: {"room":"public:a"}\n\n'], { keepOpen: true })
  answers.push(second.response)
  const got: string[] = []
  const gaps: unknown[] = []
  sub.on('*', (data, meta) => { got.push(`${meta.room}/${meta.event}/${meta.id}/${JSON.stringify(data)}`) })
  sub.onGap((gap) => { gaps.push(gap) })
  await until('the first event', () => got.length === 1)
  const [call] = fetches
  const headers = call.init.headers as Record<string, string>
  t.equal(headers.authorization, 'Bearer tok')
  t.equal(headers.accept, 'text/event-stream')
  t.notOk('last-event-id' in headers)
  t.equal(call.init.credentials, 'include')
  t.same(new URL(call.url).searchParams.getAll('room'), ['public:a', 'public:b'])
  t.notOk(new URL(call.url).searchParams.has('token'), 'no token in the URL')
  first.push('id: e-1\nevent: note\ndata: {"room":"public:a","data":1}\n\n')
  first.end()
  await until('the second event', () => got.length === 2)
  t.equal((fetches[1].init.headers as Record<string, string>)['last-event-id'], 'e-1')
  t.same(got, ['public:a/note/e-1/1', 'public:b/other/e-2/2'], 'the repeated e-1 was dropped')
  await until('the gap', () => gaps.length === 1)
  t.same(gaps, [{ room: 'public:a', since: 'e-2' }])
  t.equal(sub.status, 'open')
  sub.close()
  second.push('id: e-3\nevent: note\ndata: {"room":"public:a","data":3}\n\n')
  t.equal(got.length, 2, 'nothing after close')
})

t.test('fetch: an HTTP refusal is reported; 403 stays closed, a stream that errors or a wrong content type starts over', async (t) => {
  const errors: GatewayError[] = []
  const refused = setup(t, 'secret', { transport: 'fetch', onError: (err) => { errors.push(err) } })
  refused.answers.push(jsonResponse(403, { code: 'GW_SSE_ROOM_FORBIDDEN', message: 'room "secret" is not allowed' }))
  await until('closed', () => refused.sub.status === 'closed')
  t.match(errors, [{ code: 'GW_SSE_ROOM_FORBIDDEN', status: 403 }])

  const flaky = setup(t, 'public:a', { transport: 'fetch', onError: (err) => { errors.push(err) } })
  const broken = streamResponse(['id: e-1\nevent: note\ndata: {"room":"public:a","data":1}\n\n'], { keepOpen: true })
  flaky.answers.push(broken.response)
  flaky.answers.push(new Response('hello', { status: 200, headers: { 'content-type': 'text/plain' } }))
  flaky.answers.push(new Response('hello', { status: 200 }))
  flaky.answers.push(new Error('connection refused'))
  const last = streamResponse([], { keepOpen: true })
  flaky.answers.push(last.response)
  const got: string[] = []
  flaky.sub.on('note', (_d, meta) => { got.push(meta.id) })
  await until('the event', () => got.length === 1)
  broken.error()
  await until('five requests', () => flaky.fetches.length === 5)
  await until('open again', () => flaky.sub.status === 'open')
  t.match(errors.slice(1), [{ code: 'BAD_RESPONSE', status: 200 }, { code: 'BAD_RESPONSE' }, { code: 'NETWORK' }])
  for (const f of flaky.fetches.slice(1)) t.equal((f.init.headers as Record<string, string>)['last-event-id'], 'e-1')
})

t.test('fetch: close() while the request is on its way and while the stream is read', async (t) => {
  let release!: () => void
  const { sub, fetches } = setup(t, 'public:a', {
    transport: 'fetch',
    fetch: (async (_url: string, init: RequestInit) => {
      fetches.push({ url: _url, init })
      await new Promise<void>((resolve) => { release = resolve })
      if (init.signal?.aborted === true) throw new Error('aborted')
      return streamResponse([]).response
    }) as typeof globalThis.fetch
  })
  await until('the request', () => fetches.length === 1)
  sub.close()
  release()
  // the aborted fetch settles through promise callbacks only: once the next macrotask runs, they all have
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(sub.status, 'closed')
  t.equal(fetches.length, 1)
})

t.test('fetch: the id is opaque: a stream id that encodes several rooms\' positions is sent back verbatim', async (t) => {
  const { sub, answers, fetches } = setup(t, ['public:a', 'public:b'], { transport: 'fetch' })
  // ids of any form, e.g. one position per room of the stream; the client neither parses nor orders them
  const first = streamResponse([
    'id: v1.a-3.b-9\nevent: note\ndata: {"room":"public:a","data":1}\n\n',
    'id: v1.a-3.b-10 \u00e9\nevent: note\ndata: {"room":"public:b","data":2}\n\n'
  ])
  answers.push(first.response)
  const second = streamResponse(['id: z\nevent: gap\ndata: {"room":"public:b"}\n\n'])
  answers.push(second.response)
  answers.push(new Response(null, { status: 200, headers: { 'content-type': 'text/event-stream' } }))
  answers.push(streamResponse([], { keepOpen: true }).response)
  const got: string[] = []
  const gaps: unknown[] = []
  sub.on('note', (_data, meta) => { got.push(meta.id) })
  sub.onGap((gap) => { gaps.push(gap) })
  await until('four requests', () => fetches.length === 4)
  const sent = fetches.map((f) => (f.init.headers as Record<string, string>)['last-event-id'])
  t.same(sent, [undefined, 'v1.a-3.b-10 \u00e9', 'z', 'z'], 'the last id received, byte for byte; a gap\'s id counts too; a body-less answer keeps it')
  t.same(got, ['v1.a-3.b-9', 'v1.a-3.b-10 \u00e9'])
  t.same(gaps, [{ room: 'public:b', since: 'v1.a-3.b-10 \u00e9' }], 'the gap names the resume point that could not be served')
  t.equal(sub.lastEventId, 'z')
})

t.test('EventSource: a later subscription resumes with the lastEventId of an earlier one, verbatim', async (t) => {
  const { sub, source } = setup(t, 'public:a')
  sub.on('note', () => {})
  const s = await source(1)
  s.open()
  s.emit('note', { room: 'public:a', data: 1 }, 'v1.a-3.b-10')
  t.equal(sub.lastEventId, 'v1.a-3.b-10')
  sub.close()
  const again = setup(t, 'public:a', { lastEventId: sub.lastEventId ?? undefined })
  t.equal((await again.source(1)).params().get('lastEventId'), 'v1.a-3.b-10')
})

t.test('odd events and answers are read safely: data that is not an object, events without data, a stream without content type', async (t) => {
  const errors: GatewayError[] = []
  const { sub, answers, fetches } = setup(t, 'public:a', { transport: 'fetch', dedupeWindow: 1, onError: (err) => { errors.push(err) } })
  answers.push(streamResponse(['id: 1\nevent: note\ndata: 42\n\n', 'id: 2\nevent: note\ndata: {"room":"public:a","data":"x"}\n\n',
    'id: 3\nevent: note\ndata: {"room":"public:a","data":"y"}\n\n', 'id: 2\nevent: note\ndata: {"room":"public:a","data":"again"}\n\n']).response)
  answers.push(new Response(new Uint8Array([104, 105]), { status: 200 }))
  answers.push(streamResponse([], { keepOpen: true }).response)
  const got: Array<[unknown, string]> = []
  sub.on('*', (data, meta) => { got.push([data, meta.room]) })
  await until('three requests', () => fetches.length === 3)
  t.same(got, [[undefined, ''], ['x', 'public:a'], ['y', 'public:a'], ['again', 'public:a']],
    'JSON that is not an object has no room nor data; with a window of one id, id 2 was forgotten after id 3')
  t.match(errors, [{ code: 'BAD_RESPONSE', message: 'expected text/event-stream, got nothing', status: 200 }])
})

t.test('EventSource: events whose data or id are not strings are read as text', async (t) => {
  const { sub, source } = setup(t, 'public:a')
  const got: unknown[] = []
  sub.on('note', (data, meta) => { got.push([data, meta.id]) })
  const s = await source(1)
  s.open()
  for (const fn of s.listeners.get('note') ?? []) fn({ data: 7, lastEventId: null } as unknown as { data: string, lastEventId: string })
  t.same(got, [[undefined, '']], 'data 7 is the JSON number 7: no room, no data; no id')
})

t.test('event: expired (the token ran out) is reported as UNAUTHENTICATED and the stream starts over with a fresh token', async (t) => {
  let n = 0
  const errors: GatewayError[] = []
  const viaFetch = setup(t, 'user:1', { transport: 'fetch', token: () => `tok-${++n}`, onError: (err) => { errors.push(err) } })
  viaFetch.answers.push(streamResponse(['id: 1\nevent: note\ndata: {"room":"user:1","data":1}\n\n',
    'event: expired\ndata: {"code":"UNAUTHENTICATED","message":"token expired"}\n\n']).response)
  viaFetch.answers.push(streamResponse([], { keepOpen: true }).response)
  const got: string[] = []
  viaFetch.sub.on('*', (_data, meta) => { got.push(meta.event) })
  await until('the second request', () => viaFetch.fetches.length === 2)
  t.same(got, ['note'], 'expired is not an event of the rooms')
  t.match(errors, [{ code: 'UNAUTHENTICATED', message: 'token expired' }])
  const headers = viaFetch.fetches.map((f) => (f.init.headers as Record<string, string>).authorization)
  t.same(headers, ['Bearer tok-1', 'Bearer tok-2'])

  const sourceErrors: GatewayError[] = []
  let m = 0
  const viaSource = setup(t, 'user:1', { token: () => `tok-${++m}`, onError: (err) => { sourceErrors.push(err) } })
  viaSource.sub.on('expired', () => { t.fail('expired is not handed to listeners') })
  const s1 = await viaSource.source(1)
  s1.open()
  s1.emit('expired', 'not json')
  t.equal(s1.readyState, 2, 'the browser\'s source (which would retry with the old token) is closed')
  const s2 = await viaSource.source(2)
  t.equal(s2.params().get('token'), 'tok-2')
  t.match(sourceErrors, [{ code: 'UNAUTHENTICATED', message: 'token expired' }])
  s1.emit('expired', '{}')
  t.equal(sourceErrors.length, 1, 'the old source is ignored')
})
