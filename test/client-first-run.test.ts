import t from 'tap'
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { Page } from 'playwright-core'
import { launchChromium } from './helpers/chromium.js'
import { startInstance } from './helpers/instance.js'

// The first run as a new user sees it: `npm start` with no configuration (server.ts in a child process, only PORT,
// HOST and CLIENT_PUBLISH_ROOMS=public:demo* set), the demo page opened in two tabs of headless Chromium. Each tab
// says hello when it connects, each publishes once, and both see the other's events in the WebSocket AND the SSE
// column; presence shows both tabs; nothing on either page is an error.
//
// DEMO_SCREENSHOT=docs/images/demo.png saves what the first tab shows at the end (the README's screenshot).

const WAIT = { timeout: 20_000 }

t.test('first run: two tabs of the demo page exchange events over ws and sse, and see each other in presence', async (t) => {
  const browser = await launchChromium(t)
  if (browser === null) return
  t.after(() => browser.close())
  const server = await startInstance(t, { CLIENT_PUBLISH_ROOMS: 'public:demo*' })

  const context = await browser.newContext({ viewport: { width: 1280, height: 960 } })
  t.after(() => context.close())
  const problems: string[] = []
  const open = async (): Promise<{ page: Page, name: string }> => {
    const page = await context.newPage()
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text()) })
    page.on('pageerror', (err) => { problems.push(err.message) })
    const response = await page.goto(`${server.url}/`)
    t.equal(response?.status(), 200)
    await page.waitForSelector('#ws-status[data-state="open"]', WAIT)
    await page.waitForSelector('#sse-status[data-state="open"]', WAIT)
    const name = await page.textContent('#tab-name') ?? ''
    t.match(name, /^tab [0-9A-F]{4}$/)
    return { page, name }
  }
  const rowsFrom = (page: Page, list: 'ws' | 'sse', from: string, event: string) =>
    page.waitForSelector(`#${list}-events li[data-event="${event}"][data-from="${from}"]`, WAIT)

  const a = await open()
  const b = await open()
  t.not(a.name, b.name, 'each tab has its own name')
  for (const list of ['ws', 'sse'] as const) {
    await rowsFrom(a.page, list, a.name, 'demo.hello')
    await rowsFrom(a.page, list, b.name, 'demo.hello')
    await rowsFrom(b.page, list, b.name, 'demo.hello')
  }

  await b.page.click('#publish-form button[type="submit"]')
  await b.page.waitForSelector('#publish-result[data-kind="ok"]', WAIT)
  await a.page.click('#publish-form button[type="submit"]')
  await a.page.waitForSelector('#publish-result[data-kind="ok"]', WAIT)
  for (const list of ['ws', 'sse'] as const) {
    const fromB = await rowsFrom(a.page, list, b.name, 'demo.message')
    t.match(await fromB.textContent(), `Hello from ${b.name}`, `${list}: tab A sees what tab B published`)
    const fromA = await rowsFrom(b.page, list, a.name, 'demo.message')
    t.match(await fromA.textContent(), `Hello from ${a.name}`, `${list}: tab B sees what tab A published`)
  }

  // tab A saw both hellos and both messages; tab B opened after A's hello
  for (const [{ page }, count] of [[a, '4'], [b, '3']] as const) {
    // two tabs, each with a WebSocket and an SSE stream in the room
    const row = await page.waitForSelector('#presence-rows tr[data-room="public:demo"][data-members="4"]', WAIT)
    t.match(await row.textContent(), /public:demo4none \(anonymous\)/)
    t.equal(await page.textContent('#ws-count'), count)
    t.equal(await page.textContent('#sse-count'), count)
    const ids = await page.$$eval('#ws-events li', (rows) => rows.map((row) => (row as HTMLElement).dataset.id))
    const sseIds = await page.$$eval('#sse-events li', (rows) => rows.map((row) => (row as HTMLElement).dataset.id))
    t.same(new Set(sseIds), new Set(ids), 'the same events with the same ids on both transports')
    for (const id of ['ws-note', 'sse-note', 'room-note']) t.equal(await page.isHidden(`#${id}`), true, `no ${id} shown`)
    t.match(await page.textContent('#intro-note'), 'Browsers may publish to public:demo* on this server')
    t.equal(await page.isHidden('#external'), true, 'no curl example: the external gateway is off')
    t.equal(await page.isVisible('#rtc'), true, 'rtc is on by default')
  }
  t.same(problems, [], 'no script error, no CSP violation, no failed request on either page')

  const screenshot = process.env.DEMO_SCREENSHOT
  if (screenshot !== undefined && screenshot !== '') {
    const path = resolve(screenshot)
    mkdirSync(dirname(path), { recursive: true })
    await a.page.bringToFront()
    await a.page.evaluate(() => { window.scrollTo(0, 0) })
    // let the arrival highlight of the last rows fade
    await a.page.waitForTimeout(1500)
    // the page down to the publish and presence cards: what a user sees first
    const bottom = await a.page.$eval('.pair', (node) => Math.ceil(node.getBoundingClientRect().bottom) + 16)
    await a.page.screenshot({ path, animations: 'disabled', clip: { x: 0, y: 0, width: 1280, height: bottom } })
    t.comment(`screenshot saved to ${path}`)
  }
})
