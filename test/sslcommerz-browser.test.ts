import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildTestApp } from './helpers/app.js'
import { launchChromium } from './helpers/chromium.js'
import { STORE_ID, STORE_PASSWORD, startFakeSslcommerz } from './helpers/fake-sslcommerz.js'

// The whole checkout in headless Chromium against server.ts (GATEWAYS=ws,sslcommerz) and the fake SSLCommerz: the
// demo page's "Pay with SSLCommerz" opens a session, the fake's payment page sends the IPN and posts the browser back
// to the success URL, the buyer lands on the host's success page and the demo page shows the sslcommerz.valid event.

const WAIT = { timeout: 15_000 }

t.test('pay on the demo page, land on the success page, see sslcommerz.valid', async (t) => {
  const browser = await launchChromium(t)
  if (browser === null) return
  t.after(() => browser.close())
  const fake = await startFakeSslcommerz()
  t.after(() => fake.close())
  const { app } = await buildTestApp({
    GATEWAYS: 'ws,sslcommerz', SSLCOMMERZ_STORE_ID: STORE_ID, SSLCOMMERZ_STORE_PASSWORD: STORE_PASSWORD, SSLCOMMERZ_API_URL: fake.baseUrl
  })
  t.after(() => app.close())
  const handled: string[] = []
  app.rooms.join('sslcommerz', { id: app.rooms.nextMemberId(), user: null, transport: 'test', encoder: { name: 't', encode: (e) => e }, deliver: (_e, ev) => { handled.push(ev.event) } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const page = await browser.newPage()
  t.after(() => page.close())
  const problems: string[] = []
  page.on('pageerror', (err) => { problems.push(err.message) })
  await page.goto(`${base}/`)
  await page.locator('#sslcommerz').waitFor({ state: 'visible', ...WAIT })
  await page.locator('#sslcommerz-pay').click()

  // SSLCommerz's (fake) hosted page: the amount the session asked for, then Pay
  await page.waitForURL(`${fake.baseUrl}/EasyCheckOut/**`, WAIT)
  t.match(await page.locator('h1').textContent(), 'Pay 100.00 BDT')
  const tranId = await page.locator('#tran').textContent()
  t.match(tranId, /^demo-[0-9a-f]{16}$/)
  await page.locator('#success').click()

  // back on the host's success page (303 from the success route), which shows the payment's event
  await page.waitForURL(`${base}/?payment=success`, WAIT)
  await page.waitForFunction(() => document.getElementById('sslcommerz-note')?.dataset.event === 'sslcommerz.valid', undefined, WAIT)
  t.match(await page.locator('#sslcommerz-note').textContent(), `Payment ${String(tranId)}: sslcommerz.valid (amount 100.00 BDT)`)
  await page.locator('#ws-events li[data-event="sslcommerz.valid"]').first().waitFor(WAIT)
  t.equal(await page.locator('#ws-events li[data-event="sslcommerz.valid"]').count(), 1, 'the event is in the page\'s ws list once')

  t.same(fake.ipnAnswers, [{ status: 200, body: '{"received":true}' }], 'the IPN was handled')
  t.same(handled, ['sslcommerz.valid'], 'published once: the browser\'s return was a duplicate of the IPN')
  const session = [...fake.sessions.values()][0].params
  t.equal(session.success_url, `${base}/payments/sslcommerz/success`)
  t.equal(session.ipn_url, `${base}/webhooks/sslcommerz`)
  t.same(problems, [], 'no script error on the pages')
})
