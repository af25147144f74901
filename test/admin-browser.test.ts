import t from 'tap'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { openWs, type Frames } from './helpers/ws-client.js'
import { launchChromium } from './helpers/chromium.js'

// The admin dashboard in headless Chromium, against server.ts's app: log in through the form, see a room with its
// members and users after ws clients join, see the count change live when one leaves, publish from the page to a
// ws client. ADMIN_SCREENSHOTS=<dir> also saves the screenshots used in docs/operations.md.

const PASSWORD = 'correct horse battery staple'
const shots = process.env.ADMIN_SCREENSHOTS

t.test('the dashboard in Chromium: login, live rooms and members, publishing to a ws client, under its CSP', async (t) => {
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0])
  if (browser === null) return
  t.after(() => browser.close())
  const { app } = await buildTestApp({ GATEWAYS: 'ws,sse', ADMIN_PASSWORD: PASSWORD, AUTH_JWT_SECRET: JWT_SECRET, METRICS: 'true' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const clients: Record<string, Frames> = {}
  for (const user of ['alice', 'bob', 'carol']) {
    const frames = await openWs(`ws://127.0.0.1:${port}/ws?token=${await signToken(user)}`)
    t.after(() => { frames.ws.terminate() })
    await frames.next()
    t.same(await frames.request({ op: 'join', room: 'public:lobby' }), { op: 'joined', room: 'public:lobby' })
    clients[user] = frames
  }
  t.same(await clients.alice.request({ op: 'join', room: 'user:alice' }), { op: 'joined', room: 'user:alice' })
  // two EventSource-like readers too
  for (const room of ['public:lobby', 'public:news']) {
    const req = http.get({ host: '127.0.0.1', port, path: `/sse?room=${room}`, agent: false }, (res) => { res.resume() })
    req.on('error', () => {})
    t.after(() => { req.destroy() })
  }
  // some traffic, so the rates and charts have something to show
  for (let i = 0; i < 5; i++) await app.rooms.publish('public:lobby', 'tick', { i })

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', (err) => { problems.push(err.message) })
  let navigations = 0
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations++ })

  await page.goto(`http://127.0.0.1:${port}/admin`)
  await page.waitForSelector('form#login')
  if (shots !== undefined) mkdirSync(shots, { recursive: true })
  if (shots !== undefined) await page.screenshot({ path: `${shots}/admin-login.png` })
  await page.fill('#password', 'not the password')
  await page.click('form#login button[type=submit]')
  await page.waitForSelector('#login-message')
  t.equal(await page.textContent('#login-message'), 'wrong password', 'a wrong password shows the form again, with why')
  await page.fill('#password', PASSWORD)
  await page.click('form#login button[type=submit]')
  await page.waitForSelector('#rooms tr[data-room="public:lobby"]', { timeout: 15_000 })

  const members = (room: string) => page.textContent(`#rooms tr[data-room="${room}"] td.members`)
  const users = (room: string) => page.$$eval(`#rooms tr[data-room="${room}"] .user`, (nodes) => nodes.map((n) => n.textContent))
  await page.waitForFunction(() => document.querySelector('#rooms tr[data-room="public:lobby"] td.members')?.textContent === '4')
  t.equal(await members('public:lobby'), '4', 'three ws users and an anonymous SSE reader')
  t.same(await users('public:lobby'), ['alice', 'bob', 'carol'])
  t.same(await users('user:alice'), ['alice'])
  await page.waitForFunction(() => document.getElementById('conn-ws')?.textContent === '3')
  await page.waitForFunction(() => document.getElementById('live')?.textContent === 'live')
  t.match(await page.textContent('#bus'), /memory bus up/)
  t.match(await page.textContent('#instance'), new RegExp(app.rooms.instanceId))
  const settled = navigations

  clients.carol.ws.close(1000)
  await page.waitForFunction(() => document.querySelector('#rooms tr[data-room="public:lobby"] td.members')?.textContent === '3', undefined, { timeout: 15_000 })
  t.same(await users('public:lobby'), ['alice', 'bob'], 'carol left: the page updated itself')
  await page.waitForFunction(() => document.getElementById('conn-ws')?.textContent === '2')
  t.equal(navigations, settled, 'without reloading')

  // pick the room from the table, then publish
  await page.click('#rooms tr[data-room="public:lobby"] button')
  t.equal(await page.inputValue('#publish-room'), 'public:lobby')
  await page.fill('#publish-event', 'announcement')
  await page.fill('#publish-data', '{"text": "maintenance at 18:00"}')
  await page.click('form#publish button[type=submit]')
  const event = await clients.alice.until((frame) => frame.event === 'announcement', 10_000)
  t.match(event, { op: 'event', room: 'public:lobby', event: 'announcement', data: { text: 'maintenance at 18:00' } })
  await page.waitForFunction(() => /^Published /.test(document.getElementById('publish-result')?.textContent ?? ''))
  t.match(await page.textContent('#publish-result'), /handed to 3 member\(s\) on this instance/)
  t.match(await clients.bob.until((frame) => frame.event === 'announcement'), { data: { text: 'maintenance at 18:00' } })

  // the rates have seen the publishes
  await page.waitForFunction(() => Number(document.getElementById('rate-published')?.textContent) > 0, undefined, { timeout: 15_000 })
  await page.waitForFunction(() => document.getElementById('conn-sse')?.textContent === '2')
  if (shots !== undefined) await page.screenshot({ path: `${shots}/admin-dashboard.png`, fullPage: true })

  await page.fill('#publish-data', '{not json')
  await page.click('form#publish button[type=submit]')
  await page.waitForFunction(() => /^data is not JSON/.test(document.getElementById('publish-result')?.textContent ?? ''))

  // the one expected: the 401 of the wrong password's form post
  t.same(problems.filter((p) => !/status of 401/.test(p)), [], 'no script error and no CSP violation')
  t.equal(problems.length, 1)

  await page.click('form#logout button')
  await page.waitForSelector('form#login')
  const api = await page.evaluate(async () => (await fetch('/admin/api/overview')).status)
  t.equal(api, 401, 'logged out: the API refuses')
})
