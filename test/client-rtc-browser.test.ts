import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { wsGateway } from '../plugins/ws.js'
import { rtcSignalGateway } from '../plugins/rtc-signal.js'
import { demoRoutes } from '../routes/demo.js'
import { launchChromium } from './helpers/chromium.js'

// The WebRTC part of the demo page: two tabs of one headless Chromium join one call room through the real rtc
// signaling gateway, open a data channel to each other and exchange a message; leaving is seen by the other tab.

const WAIT = { timeout: 20_000 }

async function logIncludes (page: Page, text: string) {
  await page.waitForFunction((needle) => document.querySelector('#rtc-log')?.textContent?.includes(needle) === true, text, WAIT)
}

t.test('two tabs of the demo page connect over WebRTC and a data-channel message arrives', async (t) => {
  const browser = await launchChromium(t, { webrtc: true })
  if (browser === null) return
  t.after(() => browser.close())

  const app = Fastify()
  await app.register(wsGateway, { closeTimeoutMs: 500 })
  await app.register(rtcSignalGateway, { closeTimeoutMs: 500, stunUrls: [] })
  await app.register(demoRoutes, { endpoints: { sse: false, api: false } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const context = await browser.newContext()
  const problems: string[] = []
  const tabs = [await context.newPage(), await context.newPage()]
  for (const page of tabs) {
    page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
    page.on('pageerror', (err) => { problems.push(err.message) })
    await page.goto(`${base}/`)
  }
  const [a, b] = tabs

  await a.click('#rtc-join')
  await a.waitForSelector('#rtc-status[data-state="open"]', WAIT)
  await b.click('#rtc-join')
  await b.waitForSelector('#rtc-status[data-state="open"]', WAIT)
  await logIncludes(a, 'is open')
  await logIncludes(b, 'is open')
  await a.waitForSelector('#rtc-peers li[data-state="connected"]', WAIT)

  await b.fill('#rtc-message', 'hello from tab b')
  await b.click('#rtc-send')
  await logIncludes(a, 'hello from tab b')
  const peerOfB = await b.evaluate(() => document.querySelector('#rtc-info')?.textContent?.match(/as peer (\S+):/)?.[1])
  t.ok(peerOfB, 'tab b shows its peer id')
  t.match(await a.textContent('#rtc-log'), `${peerOfB}: hello from tab b`, 'tab a got the message from tab b\'s peer')
  t.match(await b.textContent('#rtc-log'), 'me → 1 peer(s): hello from tab b')

  await b.click('#rtc-leave')
  await logIncludes(a, `peer ${peerOfB} left`)
  t.equal(await a.$$eval('#rtc-peers li', (items) => items.length), 0, 'the peer is gone from tab a')
  t.same(problems, [], 'no script error (the ICE server list was fetched too)')
  await context.close()
})
