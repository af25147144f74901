import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { rooms } from '../plugins/rooms.js'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { demoRoutes, DEFAULT_CSP } from '../routes/demo.js'
import type { PublishResult } from '../lib/rooms/types.js'
import { launchChromium } from './helpers/chromium.js'
import type { GatewayClient } from '../public/client.js'

// public/client.js and the demo page in headless Chromium (one browser for both tests).

const WAIT = { timeout: 15_000 }

/** what the page script of the reconnect test keeps on window */
interface TestWindow {
  got: Array<{ n: number, id: string }>
  gaps: unknown[]
  statuses: string[]
  client: GatewayClient
}

async function until (what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('in headless Chromium', async (t) => {
  const browser = await launchChromium(t)
  if (browser === null) return
  t.after(() => browser.close())

  // the gateways as the lead wires them, plus demoRoutes. While `down` is set, /ws upgrades are refused (401)
  // through the gateway's own authenticate, as the server would refuse them before the upgrade.
  const app = Fastify()
  let down = false
  let refused = 0
  const authenticate = () => {
    if (!down) return null
    refused++
    throw new Error('down for the test')
  }
  app.get('/blank', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>client test</title>'))
  await app.register(rooms)
  await app.register(wsGateway, { closeTimeoutMs: 500, clientPublishRooms: ['public:demo'], authenticate })
  await app.register(sseGateway, { retryMs: 200 })
  await app.register(demoRoutes, { endpoints: { rtc: false, api: false }, publishRooms: ['public:demo'] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const publish = (room: string, event: string, data: unknown) => (app.rooms.publish(room, event, data) as PublishResult).id

  await t.test('the client reconnects after the server drops the socket and resumes: events published meanwhile arrive once, in order', async (t) => {
    const page = await browser.newPage()
    t.after(() => page.close())
    await page.goto(`${base}/blank`)
    await page.evaluate(async () => {
      const w = window as unknown as TestWindow
      const path = '/client.js'
      const { connect } = await import(path)
      w.got = []
      w.gaps = []
      w.statuses = []
      w.client = connect('/ws', { backoff: { baseMs: 50, maxMs: 200 }, pingMs: 0 })
      w.client.on('note', (data: { n: number }, meta: { id: string }) => { w.got.push({ n: data.n, id: meta.id }) })
      w.client.onGap((gap: unknown) => { w.gaps.push(gap) })
      w.client.onStatus((status: string) => { w.statuses.push(status) })
      await w.client.join('public:news')
    })
    const ids = [publish('public:news', 'note', { n: 1 }), publish('public:news', 'note', { n: 2 })]
    await page.waitForFunction(() => (window as unknown as TestWindow).got.length === 2, undefined, WAIT)

    down = true
    for (const socket of app.websocketServer.clients) socket.terminate()
    await until('the server to see the page leave', () => app.rooms.size('public:news') === 0)
    ids.push(publish('public:news', 'note', { n: 3 }), publish('public:news', 'note', { n: 4 }), publish('public:news', 'note', { n: 5 }))
    await until('a reconnect attempt refused while down', () => refused >= 1)
    down = false

    await page.waitForFunction(() => (window as unknown as TestWindow).got.length === 5, undefined, WAIT)
    ids.push(publish('public:news', 'note', { n: 6 }))
    await page.waitForFunction(() => (window as unknown as TestWindow).got.length >= 6, undefined, WAIT)
    const state = await page.evaluate(() => {
      const w = window as unknown as TestWindow
      return { got: w.got, gaps: w.gaps, statuses: w.statuses, recovered: w.client.recovered('public:news'), status: w.client.status }
    })
    t.same(state.got.map((e: { n: number }) => e.n), [1, 2, 3, 4, 5, 6], 'none lost, none twice, in order')
    t.same(state.got.map((e: { id: string }) => e.id), ids)
    t.equal(state.recovered, true, 'the rejoin with since was served from history')
    t.same(state.gaps, [])
    t.equal(state.status, 'open')
    t.equal(state.statuses[0], 'open')
    t.equal(state.statuses.at(-1), 'open')
    t.ok(state.statuses.filter((s: string) => s === 'reconnecting').length >= 2, 'it retried while the server refused')
    await page.evaluate(() => (window as unknown as TestWindow).client.close())
  })

  await t.test('the demo page shows published events over ws and sse with their ids, and the server\'s answer to a publish', async (t) => {
    const page = await browser.newPage()
    t.after(() => page.close())
    const problems: string[] = []
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text()) })
    page.on('pageerror', (err) => { problems.push(err.message) })
    const response = await page.goto(`${base}/`)
    t.equal(response?.headers()['content-security-policy'], DEFAULT_CSP, 'the page runs under the strict CSP')

    await page.waitForSelector('#ws-status[data-state="open"]', WAIT)
    await page.waitForSelector('#room-list li[data-room="public:demo"]', WAIT)
    await page.waitForSelector('#sse-status[data-state="open"]', WAIT)
    await until('the page on ws and sse', () => app.rooms.size('public:demo') === 2)
    t.match(await page.textContent('#whoami'), /anonymous/)
    // the page says hello to other tabs once its streams are open: the first event of both columns
    for (const list of ['ws', 'sse']) await page.waitForSelector(`#${list}-events li[data-event="demo.hello"].mine`, WAIT)
    t.match(await page.textContent('#intro-note'), /Browsers may publish to public:demo on this server/)
    await page.waitForSelector('#presence-rows tr[data-room="public:demo"][data-members="2"]', WAIT)

    const id = publish('public:demo', 'demo.server', { text: 'from the server' })
    for (const list of ['ws', 'sse']) {
      const row = await page.waitForSelector(`#${list}-events li[data-id="${id}"]`, WAIT)
      t.match(await row.textContent(), /public:demodemo\.server\{"text":"from the server"\}/, `${list}: room, event and data`)
      t.equal(await row.$eval('.id', (node) => node.textContent), id, `${list}: the event id is shown`)
    }

    await page.click('#publish-form button[type="submit"]')
    const ok = await page.waitForSelector('#publish-result[data-kind="ok"]', WAIT)
    const ackId = /ack id (\S+)/.exec(await ok.textContent() ?? '')?.[1]
    t.ok(ackId, 'the ack id is shown')
    await page.waitForSelector(`#ws-events li[data-id="${ackId}"]`, WAIT)
    await page.waitForSelector(`#sse-events li[data-id="${ackId}"]`, WAIT)

    await page.fill('#publish-room', 'public:other')
    await page.click('#publish-form button[type="submit"]')
    const refusedPublish = await page.waitForSelector('#publish-result[data-kind="error"]', WAIT)
    const text = await refusedPublish.textContent()
    t.match(text, /^FORBIDDEN: publishing to room public:other is not allowed/)
    t.match(text, /Browsers may publish to public:demo on this server \(CLIENT_PUBLISH_ROOMS/, 'and where publishing is allowed')

    await page.fill('#room-input', 'private:x')
    await page.click('#room-form button[type="submit"]')
    await page.waitForFunction(() => document.querySelector('#room-note')?.textContent?.includes('FORBIDDEN'), undefined, WAIT)

    t.equal(await page.textContent('#ws-count'), '3', 'hello, the server\'s event, the page\'s publish')
    t.equal(await page.textContent('#sse-count'), '3')
    t.same(problems, [], 'no script error, no CSP violation')
  })

  await t.test('with client publishing closed the page says so and how to open it, publishes nothing and shows no error', async (t) => {
    const closed = Fastify()
    await closed.register(rooms)
    await closed.register(wsGateway, { closeTimeoutMs: 500 })
    await closed.register(sseGateway, { retryMs: 200 })
    await closed.register(demoRoutes, { endpoints: { rtc: false, api: '/api' }, publishRooms: [] })
    await closed.listen({ port: 0, host: '127.0.0.1' })
    t.after(() => closed.close())
    const page = await browser.newPage()
    t.after(() => page.close())
    const problems: string[] = []
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text()) })
    page.on('pageerror', (err) => { problems.push(err.message) })
    await page.goto(`http://127.0.0.1:${(closed.server.address() as AddressInfo).port}/`)
    await page.waitForSelector('#sse-status[data-state="open"]', WAIT)
    await page.waitForSelector('#presence-rows tr[data-room="public:demo"][data-members="2"]', WAIT)
    t.match(await page.textContent('#intro-note'), /closed on this server \(CLIENT_PUBLISH_ROOMS is empty\): start it with CLIENT_PUBLISH_ROOMS=public:demo\*/)
    t.match(await page.textContent('#publish-note'), /closed on this server/)
    const id = (closed.rooms.publish('public:demo', 'demo.server', { n: 1 }) as PublishResult).id
    for (const list of ['ws', 'sse']) await page.waitForSelector(`#${list}-events li[data-id="${id}"]`, WAIT)
    t.equal(await page.textContent('#ws-count'), '1', 'no hello was published: only the server\'s event')
    t.equal(await page.isVisible('#external'), true, 'the curl example shows where the external gateway is on')
    t.match(await page.textContent('#curl-snippet'), /\/api\/rooms\/public:demo\/events/)
    t.equal(await page.isHidden('#rtc'), true, 'the rtc section hides where rtc is off')
    t.equal(await page.getAttribute('#gateway-list li[data-gateway="rtc"]', 'data-state'), 'off')
    t.equal(await page.getAttribute('#gateway-list li[data-gateway="api"]', 'data-state'), 'on')
    t.equal(await page.textContent('#rtc-status'), 'rtc: off')
    t.same(problems, [])
  })
})
