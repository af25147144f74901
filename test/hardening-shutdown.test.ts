import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import http from 'node:http'
import { WebSocket } from 'ws'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { handleShutdownSignals, FORCE_EXIT_SIGNAL_COUNT } from '../server.js'
import { UpgradeGuard, startClosing } from '../lib/ws/shutdown.js'

/**
 * Shutdown regressions (docs/security.md, "Shutdown"): an upgrade that arrives while the server closes is answered,
 * a signal sent to the whole process group of `npm start` (node gets it twice) still ends in a graceful shutdown where
 * every socket sees 1001, a third signal forces the exit, and a WebSocket client that reads nothing does not hold the
 * end of every SSE stream until its close timeout.
 */

const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

/** A raw TCP client that completes the upgrade, then answers nothing: the server's close frame is never answered. */
async function stuckClient (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(UPGRADE)
  let head = ''
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData)
        if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`no upgrade: ${head.slice(0, 40)}`))
        else resolve()
      }
    }
    socket.on('data', onData)
  })
  socket.resume()
  return socket
}

t.test('an upgrade arriving while the server closes is answered 503 and close does not hang', async (t) => {
  const app = Fastify({ return503OnClosing: true })
  await app.register(wsGateway, { closeTimeoutMs: 500 })
  // a host hook that holds the shutdown open, after the ws gateway has stopped routing upgrades
  let release = () => {}
  let entered = () => {}
  const holding = new Promise<void>((resolve) => { entered = resolve })
  app.addHook('preClose', async () => {
    entered()
    await new Promise<void>((resolve) => { release = resolve })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const open = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  await once(open, 'open')
  const openClosed = once(open, 'close')
  const closing = app.close()
  await holding
  t.equal((await openClosed)[0], 1001, 'the open socket got 1001')

  const late = net.connect(port, '127.0.0.1')
  late.on('error', () => {})
  let answer = ''
  late.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  late.write(UPGRADE)
  await once(late, 'close')
  t.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/, 'the late upgrade is refused')
  t.match(answer, /\r\nConnection: close\r\n/)
  t.match(answer, /"the server is shutting down"/)
  release()
  await t.resolves(closing, 'app.close() finishes')
})

t.test('the upgrade guard leaves alone sockets that someone else answered or upgraded', async (t) => {
  const guard = new UpgradeGuard()
  guard.close()
  const written: Buffer[] = []
  const socket = Object.assign(new (await import('node:stream')).PassThrough(), { _httpMessage: null })
  socket.write = ((chunk: Buffer) => { written.push(chunk); return true }) as never
  socket.destroy()
  guard.listener({} as http.IncomingMessage, socket)
  t.equal(written.length, 0, 'a destroyed socket gets nothing')
  // an open stream without destroySoon is ended after the refusal
  const plain = new (await import('node:stream')).PassThrough()
  const ended = once(plain, 'finish')
  guard.listener({} as http.IncomingMessage, plain)
  await ended
  t.match(plain.read()?.toString() ?? '', /^HTTP\/1\.1 503/, 'refused, then ended')
  // before close(): an unrouted upgrade is not the guard's to answer
  const open = new UpgradeGuard()
  const untouched = new (await import('node:stream')).PassThrough()
  open.listener({} as http.IncomingMessage, untouched)
  t.equal(untouched.writableLength + untouched.readableLength, 0)
  t.equal(untouched.writableEnded, false)
  await t.resolves(startClosing([], 1001, '', 10), 'closing nothing resolves')
})

t.test('the shutdown signal handler: repeats are ignored, the third forces, the handlers come off', async (t) => {
  const lines: string[] = []
  const log = { info: (o: object, m: string) => lines.push(`info ${m} ${JSON.stringify(o)}`), warn: (o: object, m: string) => lines.push(`warn ${m}`), error: (o: object, m: string) => lines.push(`error ${m}`) }
  let closeCalls = 0
  let finish: (err?: Error) => void = () => {}
  const app = {
    log,
    close: async () => {
      closeCalls++
      await new Promise<void>((resolve, reject) => { finish = (err) => { if (err === undefined) resolve(); else reject(err) } })
    }
  } as unknown as FastifyInstance
  const exits: number[] = []
  const before = process.listenerCount('SIGTERM')
  const off = handleShutdownSignals(app, 60_000, (code) => { exits.push(code) })
  t.equal(process.listenerCount('SIGTERM'), before + 1)
  process.emit('SIGTERM', 'SIGTERM')
  process.emit('SIGINT', 'SIGINT')
  t.equal(closeCalls, 1, 'one close for two signals')
  t.same(exits, [], 'the second signal changes nothing')
  t.equal(FORCE_EXIT_SIGNAL_COUNT, 3)
  process.emit('SIGINT', 'SIGINT')
  t.same(exits, [130], 'the third signal forces the exit with 128 + SIGINT')
  process.emit('SIGTERM', 'SIGTERM')
  t.same(exits, [130, 143])
  const exitCode = process.exitCode
  finish()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(process.exitCode, 0, 'a completed close sets exit code 0')
  process.exitCode = exitCode
  off()
  t.equal(process.listenerCount('SIGTERM'), before, 'the handlers are removed')
  t.match(lines.join('\n'), /already shutting down/)
  t.match(lines.join('\n'), /shutdown forced by a repeated signal/)

  // a failing close exits 1; a close that outlasts the timeout exits 1 too
  const failing = { log, close: async () => { throw new Error('boom') } } as unknown as FastifyInstance
  const off2 = handleShutdownSignals(failing, 60_000, (code) => { exits.push(code) })
  process.emit('SIGTERM', 'SIGTERM')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(process.exitCode, 1)
  process.exitCode = exitCode
  off2()
  const hanging = { log, close: async () => await new Promise(() => {}) } as unknown as FastifyInstance
  const timedOut: number[] = []
  const off3 = handleShutdownSignals(hanging, 100, (code) => { timedOut.push(code) })
  process.emit('SIGTERM', 'SIGTERM')
  const deadline = Date.now() + 10_000
  while (timedOut.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(timedOut, [1], 'a shutdown over its timeout exits 1')
  t.match(lines.join('\n'), /shutdown timed out/)
  off3()
})

t.test('a WebSocket client that answers nothing does not hold the end of SSE streams until its close timeout', async (t) => {
  const app = Fastify()
  await app.register(wsGateway, { closeTimeoutMs: 4000 })
  await app.register(sseGateway, {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const stuck = await stuckClient(port)
  const order: string[] = []
  const stuckGone = once(stuck, 'close').then(() => { order.push('ws terminated') })

  const sse = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/sse?room=public:a' }, resolve).on('error', reject)
  })
  t.equal(sse.statusCode, 200)
  sse.resume()
  const sseEnded = once(sse, 'end').then(() => { order.push('sse ended') })
  const closed = app.close()
  await Promise.all([sseEnded, stuckGone, closed])
  t.same(order, ['sse ended', 'ws terminated'], 'the SSE stream ended first, not after the ws close timeout')
})
