import t from 'tap'
import {
  Backoff, backoffDelay, ResumeTracker, SseParser, GatewayError, toSocketUrl, toHttpUrl
} from '../public/client.js'

// The pure parts of the browser client, imported from public/client.js as a browser would load it.

t.test('backoff: the first delay lies in [base * (1 - jitter), base] and the ceiling doubles per attempt up to maxMs', async (t) => {
  const options = { baseMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 }
  t.equal(backoffDelay(0, options, () => 0), 50, 'lowest draw: half the ceiling')
  t.equal(backoffDelay(0, options, () => 0.5), 75, 'a middle draw: in between')
  t.equal(backoffDelay(0, options, () => 1), 100, 'the highest draw reaches the ceiling, never more')
  t.equal(backoffDelay(1, options, () => 0), 100)
  t.equal(backoffDelay(2, options, () => 0), 200)
  t.equal(backoffDelay(3, options, () => 0), 400)
  t.equal(backoffDelay(4, options, () => 1), 1000, 'ceiling 1600 capped at maxMs')
  t.equal(backoffDelay(50, options, () => 1), 1000, 'never above maxMs however many attempts')
  t.equal(backoffDelay(10_000, options, () => 0), 500, 'no overflow to Infinity or NaN')
})

t.test('backoff: every draw of many stays within the jitter range of its attempt', async (t) => {
  const options = { baseMs: 250, maxMs: 8000, factor: 2, jitter: 0.3 }
  let outside = 0
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(8000, 250 * 2 ** attempt)
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(attempt, options)
      if (delay < ceiling * 0.7 || delay > ceiling) outside++
    }
  }
  t.equal(outside, 0)
})

t.test('backoff: jitter is spread, not constant (two clients rarely pick the same delay)', async (t) => {
  const delays = new Set<number>()
  for (let i = 0; i < 50; i++) delays.add(backoffDelay(3, { baseMs: 100, maxMs: 10_000 }))
  t.ok(delays.size > 40, `${delays.size} distinct delays of 50`)
})

t.test('backoff: jitter 0 gives the exact ceiling and jitter 1 the full range down to 0; out-of-range jitter is clamped', async (t) => {
  t.equal(backoffDelay(2, { baseMs: 100, jitter: 0 }, () => 0.7), 400)
  t.equal(backoffDelay(2, { baseMs: 100, jitter: 1 }, () => 0), 0)
  t.equal(backoffDelay(2, { baseMs: 100, jitter: 5 }, () => 0), 0, 'clamped to 1')
  t.equal(backoffDelay(2, { baseMs: 100, jitter: -1 }, () => 0), 400, 'clamped to 0')
  t.equal(backoffDelay(-3, { baseMs: 100, jitter: 0 }), 100, 'a negative attempt counts as the first')
})

t.test('backoff: defaults are 500 ms base, 30 s cap, factor 2, jitter 0.5', async (t) => {
  t.equal(backoffDelay(0, {}, () => 0), 250)
  t.equal(backoffDelay(0, {}, () => 1), 500)
  t.equal(backoffDelay(20, {}, () => 1), 30_000)
})

t.test('Backoff counts attempts and starts over after reset (a good connection)', async (t) => {
  const backoff = new Backoff({ baseMs: 10, maxMs: 1000, jitter: 0, random: () => 0.5 })
  t.same([backoff.next(), backoff.next(), backoff.next(), backoff.next()], [10, 20, 40, 80])
  t.equal(backoff.attempt, 4)
  backoff.reset()
  t.equal(backoff.attempt, 0)
  t.equal(backoff.next(), 10, 'back to the base delay')
  t.same(new Backoff().options, { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 })
})

t.test('resume tracker: the last id per room is what a rejoin sends as since', async (t) => {
  const tracker = new ResumeTracker()
  t.equal(tracker.lastId('a'), null)
  t.equal(tracker.since('a'), null, 'nothing seen: nothing to resume from')
  t.ok(tracker.accept('a', 'e-1'))
  t.ok(tracker.accept('b', 'e-2'))
  t.ok(tracker.accept('a', 'e-3'))
  t.equal(tracker.lastId('a'), 'e-3')
  t.equal(tracker.lastId('b'), 'e-2')
  t.equal(tracker.since('a'), 'e-3')
  t.equal(tracker.latest, 'e-3')
  t.equal(tracker.since('c'), null, 'a room without events has no resume point: ids of other rooms mean nothing to it')
})

t.test('resume tracker: ids are opaque strings, only compared for equality (no parsing, no order)', async (t) => {
  const tracker = new ResumeTracker()
  const ids = ['9', '10', 'b~2', 'a:17.1', '0x10', '16', '1e3', '1000']
  for (const id of ids) t.ok(tracker.accept('a', id), `${id} is a new event`)
  t.equal(tracker.since('a'), '1000', 'the resume point is the last id received, whatever it looks like')
  t.notOk(tracker.accept('a', '10'), 'equal string: a duplicate')
  t.ok(tracker.accept('a', '010'), '"010" is another id than "10", though equal as numbers')
  t.ok(tracker.accept('a', '1'), 'an id that would sort lower is still a new event, and becomes the resume point')
  t.equal(tracker.since('a'), '1')
  t.throws(() => new ResumeTracker({ window: 0 }), /dedupeWindow must be a positive integer/)
})

t.test('resume tracker: an id already delivered in a room is refused (dedupe) and does not move the resume point', async (t) => {
  const tracker = new ResumeTracker()
  t.ok(tracker.accept('a', 'e-1'))
  t.ok(tracker.accept('a', 'e-2'))
  t.notOk(tracker.accept('a', 'e-1'), 'replayed after a resume')
  t.notOk(tracker.accept('a', 'e-2'))
  t.equal(tracker.lastId('a'), 'e-2')
  t.ok(tracker.seen('a', 'e-1'))
  t.notOk(tracker.seen('b', 'e-1'))
  t.ok(tracker.accept('b', 'e-1'), 'dedupe is per room: the same id in another room is another event')
  t.ok(tracker.accept('a', undefined), 'an event without id cannot be deduplicated: accepted')
  t.ok(tracker.accept('a', ''), 'nor with an empty id')
  t.equal(tracker.lastId('a'), 'e-2', 'and it does not move the resume point')
})

t.test('resume tracker: the dedupe window is bounded per room', async (t) => {
  const tracker = new ResumeTracker({ window: 3 })
  for (const id of ['1', '2', '3', '4']) tracker.accept('a', id)
  t.notOk(tracker.seen('a', '1'), 'the oldest id left the window')
  t.ok(tracker.seen('a', '2'))
  t.ok(tracker.seen('a', '4'))
  t.notOk(tracker.accept('a', '4'))
  t.equal(new ResumeTracker().window, 1024)
})

t.test('resume tracker: forget drops a room (a left room starts fresh when joined again)', async (t) => {
  const tracker = new ResumeTracker()
  tracker.accept('a', 'x')
  tracker.forget('a')
  t.equal(tracker.lastId('a'), null)
  t.ok(tracker.accept('a', 'x'))
})

t.test('sse parser: events with id, event name and data, the data of several lines joined by LF', async (t) => {
  const parser = new SseParser()
  const events = parser.feed('retry: 150\n\nid: 1-1\nevent: note\ndata: {"room":"a",\ndata: "data":1}\n\n: ping\n\n')
  t.same(events, [{ id: '1-1', event: 'note', data: '{"room":"a",\n"data":1}' }])
  t.equal(parser.retry, 150)
  t.equal(parser.lastEventId, '1-1')
})

t.test('sse parser: a message split anywhere across chunks, CRLF and lone CR line endings, a BOM', async (t) => {
  const text = '\ufeffid: 7\r\nevent: a\r\ndata: x\r\n\r\ndata: y\rdata: z\r\rdata:no-space\n\n'
  const expected = [
    { id: '7', event: 'a', data: 'x' },
    { id: '7', event: 'message', data: 'y\nz' },
    { id: '7', event: 'message', data: 'no-space' }
  ]
  t.same(new SseParser().feed(text), expected, 'in one chunk')
  for (let cut = 1; cut < text.length; cut++) {
    const parser = new SseParser()
    const events = [...parser.feed(text.slice(0, cut)), ...parser.feed(text.slice(cut))]
    if (JSON.stringify(events) !== JSON.stringify(expected)) {
      t.fail(`split at ${cut} gave ${JSON.stringify(events)}`)
      return
    }
  }
  const one = new SseParser()
  const events = [...text].flatMap((ch) => one.feed(ch))
  t.same(events, expected, 'one character per chunk')
})

t.test('sse parser: fields per the spec (empty data dispatches, no data does not, bad retry and NUL ids are ignored)', async (t) => {
  const parser = new SseParser()
  t.same(parser.feed('event: x\n\n'), [], 'no data line: nothing dispatched, and the event name is reset')
  t.same(parser.feed('data\n\n'), [{ id: '', event: 'message', data: '' }], 'a field without colon has an empty value')
  t.same(parser.feed('retry: 1.5\nretry: x\nid: a\0b\nfoo: bar\ndata: d\n\n'), [{ id: '', event: 'message', data: 'd' }])
  t.equal(parser.retry, undefined)
  t.same(parser.feed('id\ndata: e\n\n'), [{ id: '', event: 'message', data: 'e' }], 'an empty id resets the last id')
  t.same(parser.feed(''), [], 'an empty chunk is nothing')
})

t.test('urls: page-relative and http URLs become ws URLs for sockets and http URLs for streams', async (t) => {
  t.equal(toSocketUrl('/ws', 'http://example.test/app/'), 'ws://example.test/ws')
  t.equal(toSocketUrl('ws', 'https://example.test/app/'), 'wss://example.test/app/ws')
  t.equal(toSocketUrl('http://127.0.0.1:3000/ws'), 'ws://127.0.0.1:3000/ws')
  t.equal(toSocketUrl(new URL('wss://h/ws')), 'wss://h/ws')
  t.equal(toHttpUrl('/sse', 'https://example.test/'), 'https://example.test/sse')
  t.equal(toHttpUrl('ws://h:1/rtc'), 'http://h:1/rtc')
  t.equal(toHttpUrl('wss://h/rtc'), 'https://h/rtc')
  t.throws(() => toSocketUrl('ftp://h/x'), TypeError)
  t.throws(() => toHttpUrl('ftp://h/x'), TypeError)
  t.throws(() => toSocketUrl('/ws'), TypeError, 'relative without a page to resolve against')
})

t.test('GatewayError carries the code and the details it was given', async (t) => {
  const err = new GatewayError('FORBIDDEN', 'nope', { status: 403, room: 'a', ref: 'c1' })
  t.ok(err instanceof Error)
  t.match(err, { name: 'GatewayError', code: 'FORBIDDEN', message: 'nope', status: 403, room: 'a', ref: 'c1' })
  t.notOk('status' in new GatewayError('X', 'y'))
})
