import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import { buildTestApp } from './helpers/app.js'
import { closeOnUnreadBody, hasUnreadBody } from '../lib/http/unread-body.js'

/**
 * Refused requests do not drain bodies (docs/security.md, "Refused requests"): a 401 answered before the body is read,
 * or a 404, closes its kept-alive connection instead of reading and discarding a body of any size.
 */

const LIMIT = 64 * 1024 * 1024

/** Sends `head` then body bytes until the server closes the connection or LIMIT bytes went out; what came back. */
async function pump (port: number, head: string, chunked: boolean): Promise<{ sent: number, answer: string, closedEarly: boolean }> {
  const socket = net.connect(port, '127.0.0.1')
  let answer = ''
  let closed = false
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  socket.on('error', () => {})
  const gone = new Promise<void>((resolve) => { socket.on('close', () => { closed = true; resolve() }) })
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(head)
  const piece = Buffer.alloc(64 * 1024, 0x61)
  const framed = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece
  let sent = 0
  const deadline = Date.now() + 20_000
  while (!closed && sent < LIMIT && Date.now() < deadline) {
    sent += piece.length
    if (!socket.write(framed)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), gone])
  }
  const closedEarly = closed || sent < LIMIT
  socket.destroy()
  return { sent, answer, closedEarly }
}

t.test('a 401 before the body is read and a 404 close the connection instead of draining the body', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: 'ws,external', EXTERNAL_API_KEYS: 'ops=0123456789abcdef0123' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  const unauthorized = await pump(port, 'POST /api/rooms/public:a/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${1024 * 1024 * 1024}\r\n\r\n`, false)
  t.match(unauthorized.answer, /^HTTP\/1\.1 401 /)
  t.match(unauthorized.answer, /\r\nconnection: close\r\n/i)
  t.ok(unauthorized.closedEarly, `the server closed the connection after ${(unauthorized.sent / 1048576).toFixed(1)} MiB, not after the whole body`)

  const missing = await pump(port, 'POST /nothing-here HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n', true)
  t.match(missing.answer, /^HTTP\/1\.1 404 /)
  t.match(missing.answer, /\r\nconnection: close\r\n/i)
  t.ok(missing.closedEarly, `chunked: closed after ${(missing.sent / 1048576).toFixed(1)} MiB`)

  // a request whose body was read keeps its connection
  const ok = await fetch(`http://127.0.0.1:${port}/api/rooms/public:a/events`, {
    method: 'POST',
    headers: { authorization: 'Bearer 0123456789abcdef0123', 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'e', data: 1 })
  })
  t.equal(ok.status, 202)
  t.not(ok.headers.get('connection'), 'close')
})

t.test('hasUnreadBody and the hook', async (t) => {
  const raw = (complete: boolean, headers: Record<string, string>, httpVersionMajor = 1) => ({ complete, headers, httpVersionMajor })
  t.equal(hasUnreadBody(raw(true, { 'content-length': '10' })), false, 'read in full')
  t.equal(hasUnreadBody(raw(false, {})), false, 'no body announced')
  t.equal(hasUnreadBody(raw(false, { 'content-length': '0' })), false)
  t.equal(hasUnreadBody(raw(false, { 'content-length': '10' })), true)
  t.equal(hasUnreadBody(raw(false, { 'transfer-encoding': 'chunked' })), true)
  const set: string[] = []
  const reply = { hasHeader: () => false, header: (name: string, value: string) => set.push(`${name}: ${value}`) }
  await closeOnUnreadBody({ raw: raw(false, { 'content-length': '5' }, 2) }, reply)
  t.same(set, [], 'HTTP/2 has no connection header')
  await closeOnUnreadBody({ raw: raw(false, { 'content-length': '5' }) }, reply)
  t.same(set, ['connection: close'])
})
