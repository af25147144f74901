import t from 'tap'
import Fastify from 'fastify'
import { wsGateway } from '../plugins/ws.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { launchChromium } from './helpers/chromium.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- values of the browser page (globals, DOM and WebRTC events) this script runs in
type InPage = any
declare const window: InPage

t.test('a page in headless Chromium opens /ws with a token, joins its user room and receives a published event', async (t) => {
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0])
  if (browser === null) return
  t.after(() => browser.close())

  const app = Fastify()
  t.after(() => app.close())
  await app.register(wsGateway, { authenticate: createJwtAuthenticator(JWT_SECRET), closeTimeoutMs: 500 })
  // a blank page of the same origin, so the browser sends its real Origin header (same-origin is the default rule)
  app.get('/blank', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>ws test</title>'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const token = await signToken('42')

  const page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${port}/blank`)
  await page.evaluate(({ url }) => {
    window.frames_ = []
    const ws = new WebSocket(url)
    window.socket = ws
    ws.onmessage = (message: { data: string }) => {
      const frame = JSON.parse(message.data)
      window.frames_.push(frame)
      if (frame.op === 'hello') ws.send(JSON.stringify({ op: 'join', room: 'user:42', ref: 'j' }))
    }
  }, { url: `ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}` })

  await page.waitForFunction(() => window.frames_.some((f: InPage) => f.op === 'joined'), undefined, { timeout: 10_000 })
  const { id } = await app.rooms.publish('user:42', 'notification', { title: 'New Message!' })
  await page.waitForFunction(() => window.frames_.some((f: InPage) => f.op === 'event'), undefined, { timeout: 10_000 })
  const frames = await page.evaluate(() => window.frames_)
  t.match(frames[0], { op: 'hello', user: '42' })
  t.same(frames[1], { op: 'joined', room: 'user:42', ref: 'j' })
  t.same(frames[2], { op: 'event', room: 'user:42', event: 'notification', data: { title: 'New Message!' }, id })
  await page.evaluate(() => window.socket.close(1000))
})

t.test('a page of another origin is refused by default: Chromium reports the socket closed abnormally', async (t) => {
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0])
  if (browser === null) return
  t.after(() => browser.close())
  const app = Fastify()
  t.after(() => app.close())
  const answers: number[] = []
  app.addHook('onResponse', async (request, reply) => { if (request.url.startsWith('/ws')) answers.push(reply.statusCode) })
  await app.register(wsGateway, { closeTimeoutMs: 500 })
  app.get('/blank', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>ws test</title>'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${port}/blank`)
  // same port, other host name: the Origin (127.0.0.1) no longer matches the Host (localhost)
  const code = await page.evaluate(async ({ url }) => await new Promise((resolve) => {
    const ws = new WebSocket(url)
    ws.onopen = () => { resolve('opened') }
    ws.onclose = (event: { code: number }) => { resolve(event.code) }
  }), { url: `ws://localhost:${port}/ws` })
  t.equal(code, 1006, 'the browser saw no WebSocket')
  t.same(answers, [403], 'the server refused the upgrade with 403')
})
