import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { sseGateway } from '../plugins/sse.js'
import type { SseStream } from '../lib/sse/stream.js'
import type { PublishResult } from '../lib/rooms/types.js'
import { launchChromium } from './helpers/chromium.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- values of the browser page (globals, DOM and WebRTC events) this script runs in
type InPage = any

const WAIT = { timeout: 10_000 }

async function until (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('a browser EventSource survives a server-side drop: it reconnects with Last-Event-ID and gets every event exactly once', async (t) => {
  // the helper's parameter type does not accept tap's Test as is (reported to the lead): a narrow cast
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0])
  if (browser === null) return
  t.after(() => browser.close())

  const app = Fastify()
  const resumeHeaders: Array<string | null> = []
  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/sse')) resumeHeaders.push((request.headers['last-event-id'] as string | undefined) ?? null)
  })
  app.get('/', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>sse</title>'))
  // a small retry: the browser waits this long before it reconnects
  await app.register(sseGateway, { retryMs: 150 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const publish = (n: number) => (app.rooms.publish('public:news', 'note', { n }) as PublishResult).id

  const page = await browser.newPage()
  await page.goto(`${base}/`)
  await page.evaluate(() => {
    const w = window as InPage
    w.received = []
    w.opens = 0
    w.errors = 0
    const source = new EventSource('/sse?room=public:news')
    source.addEventListener('note', (e) => {
      const message = e as MessageEvent
      w.received.push({ id: message.lastEventId, n: JSON.parse(message.data).data.n })
    })
    source.onopen = () => { w.opens++ }
    source.onerror = () => { w.errors++ }
    w.source = source
  })
  await page.waitForFunction(() => (window as InPage).opens === 1, undefined, WAIT)
  await until('the stream to join', () => app.rooms.size('public:news') === 1)
  const ids = [publish(1), publish(2)]
  await page.waitForFunction(() => (window as InPage).received.length === 2, undefined, WAIT)

  // the server drops the stream; what is published before the browser is back must still reach it, once
  const [stream] = app.rooms.members('public:news') as SseStream[]
  stream.close('shutdown')
  ids.push(publish(3), publish(4))
  t.equal(app.rooms.size('public:news'), 0, 'published while the browser had no stream')

  await page.waitForFunction(() => (window as InPage).opens === 2, undefined, WAIT)
  await until('the new stream to join', () => app.rooms.size('public:news') === 1)
  ids.push(publish(5))
  await page.waitForFunction(() => (window as InPage).received.length >= 5, undefined, WAIT)

  const state = await page.evaluate(() => {
    const w = window as InPage
    return { received: w.received, opens: w.opens, errors: w.errors, readyState: w.source.readyState }
  })
  t.same(state.received.map((r: { n: number }) => r.n), [1, 2, 3, 4, 5], 'every event, in order, none twice')
  t.same(state.received.map((r: { id: string }) => r.id), ids, 'the ids publish returned')
  t.same(resumeHeaders, [null, ids[1]], 'the browser reconnected by itself with Last-Event-ID')
  t.equal(state.errors, 1, 'one drop seen')
  t.equal(state.readyState, 1, 'open again')
  await page.evaluate(() => { (window as InPage).source.close() })
})
