import t from 'tap'
import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http'
import { createGunzip } from 'node:zlib'
import { buildTestApp } from './helpers/app.js'
import { startNginx } from './helpers/nginx.js'
import { until } from './helpers/redis.js'
import { openWs } from './helpers/ws-client.js'

/**
 * server.ts's app behind a real nginx (the usual reverse-proxy configuration: WebSocket upgrade headers,
 * `X-Forwarded-For`, proxy buffering and gzip on, event streams included), with `TRUST_PROXY` naming nginx's address.
 * Clients connect from distinct loopback addresses (127.0.0.x), so the address nginx forwards differs from the one the
 * app's socket sees (nginx's 127.0.0.1).
 */

// nginx's own location settings for the app, shared by both locations below
const PROXY = (upstream: string) => `
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1h;`

interface SseEvent { id?: string, event?: string, data: string }

/**
 * An SSE client over node:http from a chosen local address, decoding gzip as a browser does; `events` fill in as
 * they arrive (each once its blank line arrived).
 */
class SseClient {
  readonly events: SseEvent[] = []
  private readonly ready: Promise<{ status: number, headers: IncomingHttpHeaders }>
  text = ''
  private readonly req: ClientRequest
  private parsed = 0

  constructor (url: string, options: { localAddress: string, headers?: Record<string, string> }) {
    this.req = request(url, { localAddress: options.localAddress, headers: { 'accept-encoding': 'gzip', ...options.headers } })
    this.ready = new Promise((resolve, reject) => {
      this.req.once('response', (res) => {
        res.on('error', () => {})
        const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res
        body.setEncoding('utf8')
        body.on('data', (chunk: string) => { this.append(chunk) })
        body.on('error', () => {})
        resolve({ status: res.statusCode ?? 0, headers: res.headers })
      })
      this.req.once('error', reject)
    })
    // a stream closed before its headers came rejects `ready`; that is only an error for a test that awaits it
    this.ready.catch(() => {})
    this.req.end()
  }

  private append (chunk: string) {
    this.text += chunk
    for (;;) {
      const end = this.text.indexOf('\n\n', this.parsed)
      if (end === -1) return
      const block = this.text.slice(this.parsed, end)
      this.parsed = end + 2
      const event: SseEvent = { data: '' }
      let hasData = false
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':')
        if (colon <= 0) continue
        const [field, value] = [line.slice(0, colon), line.slice(colon + 1).replace(/^ /, '')]
        if (field === 'id') event.id = value
        else if (field === 'event') event.event = value
        else if (field === 'data') { event.data += value; hasData = true }
      }
      if (hasData) this.events.push(event)
    }
  }

  /** The response's status and headers, failing after `timeoutMs` (nginx may hold even the headers back). */
  async response (timeoutMs = 10_000): Promise<{ status: number, headers: IncomingHttpHeaders }> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([this.ready, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`no SSE response within ${timeoutMs} ms`)) }, timeoutMs)
      })])
    } finally {
      clearTimeout(timer)
    }
  }

  async event (index: number, timeoutMs = 10_000): Promise<SseEvent> {
    await until(() => this.events.length > index, timeoutMs, `SSE event #${index + 1}`)
    return this.events[index]
  }

  close () {
    this.req.destroy()
  }
}

t.test('server.ts behind a real nginx', async (t) => {
  const { app, logs } = await buildTestApp({
    GATEWAYS: 'ws,sse',
    TRUST_PROXY: '127.0.0.1',
    // one connection per client address: which address the app counts shows through refusals
    WS_MAX_CONN_PER_IP: '1',
    LOG_LEVEL: 'info'
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port: appPort } = app.server.address() as { port: number }

  const nginx = await startNginx(t, appPort, {
    server: (upstream) => `
    proxy_buffering on;
    gzip on;
    gzip_min_length 0;
    gzip_types text/event-stream application/json;
    location / {${PROXY(upstream)}
    }
    # the same app with its X-Accel-Buffering header ignored: what nginx does with an event stream without it
    location /buffered/ {${PROXY(upstream).replace(/proxy_pass http:\/\/(\S+);/, 'proxy_pass http://$1/;')}
      proxy_ignore_headers X-Accel-Buffering;
    }`,
    // a graceful stop waits for upgraded (ws) connections until worker_shutdown_timeout, with none set forever
    // (nginx 1.22): production configs need it too
    shutdownTimeout: '1s'
  })
  if (nginx === null) return
  const wsUrl = `ws://127.0.0.1:${nginx.port}/ws`

  await t.test('a ws client joins a room through nginx and receives what another client publishes', async (t) => {
    const reader = await openWs(wsUrl, { localAddress: '127.0.0.2' })
    const writer = await openWs(wsUrl, { localAddress: '127.0.0.3' })
    t.teardown(() => { reader.ws.terminate(); writer.ws.terminate() })
    t.match(await reader.next(), { op: 'hello' })
    t.match(await writer.next(), { op: 'hello' })
    t.same(await reader.request({ op: 'join', room: 'public:demo-proxy', ref: 'j' }), { op: 'joined', room: 'public:demo-proxy', ref: 'j' })
    writer.send({ op: 'publish', room: 'public:demo-proxy', event: 'note', data: { text: 'through nginx' }, ref: 'p' })
    const ack = await writer.until((f) => f.op === 'ack')
    t.match(ack, { op: 'ack', ref: 'p', id: String })
    t.same(await reader.next(), { op: 'event', room: 'public:demo-proxy', event: 'note', data: { text: 'through nginx' }, id: ack.id })
  })

  await t.test('the app counts and logs the client address from X-Forwarded-For, not nginx\'s, and a forged one does not count', async (t) => {
    const first = await openWs(wsUrl, { localAddress: '127.0.0.4' })
    t.teardown(() => { first.ws.terminate() })
    t.match(await first.next(), { op: 'hello' })
    // a second connection from the same client address is over WS_MAX_CONN_PER_IP=1
    await t.rejects(openWs(wsUrl, { localAddress: '127.0.0.4' }), { message: 'upgrade refused with 429', statusCode: 429 })
    // a client's own X-Forwarded-For is kept by nginx but the address nginx appends (its peer) is the one the app takes
    await t.rejects(openWs(wsUrl, { localAddress: '127.0.0.4', headers: { 'x-forwarded-for': '198.51.100.7' } }), { message: 'upgrade refused with 429', statusCode: 429 })
    // another client address is admitted, though every connection reaches the app from nginx's 127.0.0.1
    const other = await openWs(wsUrl, { localAddress: '127.0.0.5' })
    t.teardown(() => { other.ws.terminate() })
    t.match(await other.next(), { op: 'hello' })

    const wsRequests = logs.lines.map((line) => JSON.parse(line)).filter((entry) => entry.req?.url === '/ws')
    const addresses = new Set(wsRequests.map((entry) => entry.req.remoteAddress))
    t.ok(addresses.has('127.0.0.4') && addresses.has('127.0.0.5'), `request logs carry the forwarded addresses (${[...addresses].join(', ')})`)
    t.notOk(addresses.has('127.0.0.1'), 'never nginx\'s own address')
    t.notOk(addresses.has('198.51.100.7'), 'never the address the client claimed')
  })

  await t.test('an SSE stream through nginx (buffering and gzip on) gets each event as it is published and resumes with Last-Event-ID', async (t) => {
    const room = 'public:sse-proxy'
    const stream = new SseClient(`${nginx.base}/sse?room=${room}`, { localAddress: '127.0.0.6' })
    const held = new SseClient(`${nginx.base}/buffered/sse?room=${room}`, { localAddress: '127.0.0.6' })
    t.teardown(() => { stream.close(); held.close() })
    const { status, headers } = await stream.response()
    t.equal(status, 200)
    t.match(headers['content-type'], /^text\/event-stream/)
    t.equal(headers['content-encoding'], 'gzip', 'nginx compresses the stream (gzip is in play)')
    // both streams are subscribed before anything is published
    await until(() => app.rooms.size(room) === 2, 10_000, 'both streams to join')

    const one = (await app.rooms.publish(room, 'tick', { n: 1 })).id
    t.same(await stream.event(0), { id: one, event: 'tick', data: JSON.stringify({ room, data: { n: 1 } }) }, 'event 1 arrives before event 2 is published')
    const two = (await app.rooms.publish(room, 'tick', { n: 2 })).id
    t.same(await stream.event(1), { id: two, event: 'tick', data: JSON.stringify({ room, data: { n: 2 } }) }, 'then event 2')
    // the same stream where nginx ignores X-Accel-Buffering: gzip holds both events (the header is what gets them through)
    t.same(held.events, [], 'without the header nginx had passed no event yet')
    held.close()

    // disconnected: 3 and 4 are published; the resumed stream gets exactly those, then goes on live
    stream.close()
    await until(() => app.rooms.size(room) === 0, 10_000, 'the app to drop both streams')
    const three = (await app.rooms.publish(room, 'tick', { n: 3 })).id
    const four = (await app.rooms.publish(room, 'tick', { n: 4 })).id
    const resumed = new SseClient(`${nginx.base}/sse?room=${room}`, { localAddress: '127.0.0.6', headers: { 'last-event-id': two } })
    t.teardown(() => { resumed.close() })
    t.equal((await resumed.response()).status, 200)
    t.same([await resumed.event(0), await resumed.event(1)].map((e) => [e.id, JSON.parse(e.data).data.n]), [[three, 3], [four, 4]], 'exactly the missed events, in order')
    await until(() => app.rooms.size(room) === 1, 10_000, 'the resumed stream to be live')
    const five = (await app.rooms.publish(room, 'tick', { n: 5 })).id
    t.equal((await resumed.event(2)).id, five, 'then live again')
    t.equal(resumed.events.length, 3, 'no duplicate')
  })

  await t.test('nginx\'s graceful stop while a ws is open closes the client, and the app lets the connection go', async (t) => {
    const client = await openWs(wsUrl, { localAddress: '127.0.0.7' })
    t.teardown(() => { client.ws.terminate() })
    t.match(await client.next(), { op: 'hello' })
    t.match(await client.request({ op: 'join', room: 'public:bye' }), { op: 'joined', room: 'public:bye' })
    t.equal(app.rooms.size('public:bye'), 1)
    await nginx.gracefulStop()
    const closed = await client.waitClose(10_000)
    t.ok(closed.code > 0, `the client saw a close (${closed.code})`)
    await until(() => app.rooms.size('public:bye') === 0, 10_000, 'the app to drop the member')
    t.equal(app.rooms.size('public:bye'), 0, 'the app let the connection go')
    t.match(nginx.log(), /gracefully shutting down/)
  })
})
