import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { openWs, waitFor, type Frames } from './helpers/ws-client.js'
import { ExpiryWheel, expiryWheel, expiresAt, refreshAt } from '../lib/expiry.js'

/**
 * Tokens that expire while their connection is open (docs/security.md, docs/protocol.md "Extensions"): a ws/rtc
 * connection is asked to `refresh` before expiry, keeps going with a new token of the same user (losing the rooms
 * the new token does not allow), and is told UNAUTHENTICATED and closed with 1008 at expiry otherwise. An SSE stream
 * gets `event: expired` and ends. One shared sweep, no timer per connection.
 */

async function server (t: Test): Promise<{ app: FastifyInstance, port: number }> {
  const { app } = await buildTestApp({ AUTH_JWT_SECRET: JWT_SECRET, GATEWAYS: 'ws,sse,rtc', PUBLIC_ROOMS: 'public:*' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}

async function client (t: Test, port: number, path: string): Promise<Frames> {
  const frames = await openWs(`ws://127.0.0.1:${port}${path}`)
  t.after(() => { frames.ws.terminate() })
  await frames.next()
  return frames
}

t.test('a ws connection is asked to refresh, then told UNAUTHENTICATED and closed with 1008 at expiry', async (t) => {
  const { app, port } = await server(t)
  // 5 s: the refresh request comes about 2.5 s before the expiry, a margin for a sweep delayed by a loaded machine
  const token = await signToken('alice', { expiresInS: 5 })
  const frames = await client(t, port, `/ws?token=${token}`)
  frames.send({ op: 'join', room: 'user:alice', ref: 'j' })
  await frames.until((f) => f.op === 'joined')
  const asked = await frames.until((f) => f.op === 'refresh')
  const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp
  t.equal(asked.exp, exp, 'the refresh request names the expiry')
  t.ok(Date.now() < exp * 1000, 'asked before the expiry')
  const error = await frames.until((f) => f.op === 'error')
  t.same(error, { op: 'error', code: 'UNAUTHENTICATED', message: 'token expired' })
  t.ok(Date.now() >= exp * 1000, 'not before the expiry')
  t.same(await frames.closed, { code: 1008, reason: 'token expired' })
  await waitFor(() => app.rooms.size('user:alice') === 0, 5000, 'the room left')
})

t.test('a refresh with a new token of the same user keeps the connection past the old expiry; rooms it lost are left', async (t) => {
  const { app, port } = await server(t)
  const old = await signToken('bob', { expiresInS: 5, rooms: ['team:a', 'team:b'] })
  const frames = await client(t, port, `/ws?token=${old}`)
  for (const room of ['team:a', 'team:b', 'public:x']) {
    frames.send({ op: 'join', room, ref: room })
    await frames.until((f) => f.op === 'joined' && f.ref === room)
  }
  const asked = await frames.until((f) => f.op === 'refresh')
  const fresh = await signToken('bob', { expiresInS: 600, rooms: ['team:a'] })
  frames.send({ op: 'refresh', token: fresh, ref: 'r1' })
  t.same(await frames.until((f) => f.op === 'left'), { op: 'left', room: 'team:b' }, 'the room the new token does not allow is left')
  const refreshed = await frames.until((f) => f.op === 'refreshed')
  t.equal(refreshed.ref, 'r1')
  t.ok(refreshed.exp > asked.exp, 'the new expiry')
  t.equal(app.rooms.size('team:b'), 0)
  t.equal(app.rooms.size('team:a'), 1, 'allowed rooms stay')
  // the old expiry passes: a sweep at or after it has run, and the connection is still served
  await expiryWheel.sweptAfter(asked.exp * 1000 + 1)
  frames.send({ op: 'ping', ref: 'p' })
  t.equal((await frames.until((f) => f.ref === 'p')).op, 'pong')
  t.notOk(frames.all.some((f) => f.op === 'error'), 'no error frame')
  frames.send({ op: 'refresh', token: fresh })
  t.same(await frames.until((f) => f.op === 'refreshed'), { op: 'refreshed', exp: refreshed.exp }, 'no ref, no ref echoed')
})

t.test('a refresh is refused for another user, a bad token, or an anonymous connection', async (t) => {
  const { port } = await server(t)
  const anonymous = await client(t, port, '/ws')
  anonymous.send({ op: 'refresh', token: await signToken('eve'), ref: 1 })
  t.match(await anonymous.until((f) => f.ref === 1), { op: 'error', code: 'BAD_MESSAGE', message: /authenticated connection/ })
  anonymous.send({ op: 'refresh', ref: 2 })
  t.match(await anonymous.until((f) => f.ref === 2), { op: 'error', code: 'BAD_MESSAGE', message: /token/ })

  const other = await client(t, port, `/ws?token=${await signToken('carol')}`)
  other.send({ op: 'refresh', token: await signToken('mallory'), ref: 'x' })
  t.match(await other.until((f) => f.ref === 'x'), { op: 'error', code: 'UNAUTHENTICATED', message: /same user/ })
  t.equal((await other.closed).code, 1008)

  const bad = await client(t, port, `/ws?token=${await signToken('dave')}`)
  bad.send({ op: 'refresh', token: await signToken('dave', {}, 'another-secret-that-is-long-enough-32b'), ref: 'y' })
  t.match(await bad.until((f) => f.ref === 'y'), { op: 'error', code: 'UNAUTHENTICATED' })
  t.equal((await bad.closed).code, 1008)
})

t.test('an auth frame schedules the expiry too; rtc peers are told when a refresh revokes a room', async (t) => {
  const { port } = await server(t)
  const frames = await client(t, port, '/ws')
  frames.send({ op: 'auth', token: await signToken('erin', { expiresInS: 5 }) })
  t.equal((await frames.until((f) => f.op === 'hello')).user, 'erin')
  t.match(await frames.until((f) => f.op === 'refresh'), { op: 'refresh', exp: Number }, 'asked to refresh after an auth frame')

  const a = await client(t, port, `/rtc?token=${await signToken('frank', { rooms: ['call:1'] })}`)
  const b = await client(t, port, `/rtc?token=${await signToken('grace', { rooms: ['call:1'] })}`)
  a.send({ op: 'join', room: 'call:1' })
  const joined = await a.until((f) => f.op === 'joined')
  b.send({ op: 'join', room: 'call:1' })
  await b.until((f) => f.op === 'joined')
  await a.until((f) => f.op === 'peer-joined')
  b.send({ op: 'refresh', token: await signToken('grace', { rooms: [] }) })
  t.same(await b.until((f) => f.op === 'left'), { op: 'left', room: 'call:1' })
  t.match(await a.until((f) => f.op === 'peer-left'), { op: 'peer-left', room: 'call:1' }, 'the other peer is told')
  t.ok(joined.peer)
})

t.test('an SSE stream gets event: expired and ends when its token expires', async (t) => {
  const { app, port } = await server(t)
  const token = await signToken('heidi', { expiresInS: 2 })
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/sse?room=user:heidi&token=${token}`, agent: false }, resolve).on('error', reject)
  })
  t.equal(res.statusCode, 200)
  let body = ''
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => { body += chunk })
  await new Promise((resolve) => res.once('end', resolve))
  t.match(body, /event: expired\ndata: \{"code":"UNAUTHENTICATED","message":"token expired"\}\n\n$/)
  t.equal(app.rooms.size('user:heidi'), 0)
})

t.test('the expiry wheel: due entries run once per deadline, cancelled ones never, the timer only while needed', async (t) => {
  let now = 10_000
  const wheel = new ExpiryWheel({ tickMs: 1000, now: () => now })
  const ran: string[] = []
  const a = { due: (at: number) => { ran.push(`a@${at}`); return null } }
  const b = { due: () => { ran.push('b'); return now + 1500 } }
  const c = { due: () => { throw new Error('boom') } }
  const d = { due: () => { ran.push('d'); return null } }
  wheel.schedule(a, 9000)
  wheel.schedule(b, 11_200)
  wheel.schedule(c, 10_500)
  wheel.schedule(d, 10_500)
  wheel.cancel(d)
  wheel.cancel(d)
  t.equal(wheel.size, 3)
  t.equal(wheel.running, true)
  wheel.sweep()
  t.same(ran, ['a@10000'], 'a deadline in the past runs at the next sweep')
  now = 11_000
  wheel.sweep()
  t.same(ran, ['a@10000'], 'c threw; b not due yet (its slot ends at 12 s)')
  now = 12_000
  wheel.sweep()
  t.same(ran, ['a@10000', 'b'], 'b ran at its slot and rescheduled itself')
  t.equal(wheel.size, 1)
  const swept = wheel.sweptAfter(13_000)
  now = 14_000
  wheel.sweep()
  await swept
  t.same(ran, ['a@10000', 'b', 'b'])
  wheel.cancel(b)
  t.equal(wheel.running, false, 'no timer once nothing is scheduled')
  t.equal(expiresAt(null), null)
  t.equal(expiresAt({ id: 'x', claims: { exp: 'soon' } }), null)
  t.equal(expiresAt({ id: 'x', claims: { exp: 5 } }), 5000)
  t.equal(refreshAt(100_000, 0), 70_000, '30 s before')
  t.equal(refreshAt(10_000, 0), 5000, 'half the life when shorter')
  t.equal(refreshAt(0, 10_000), 0, 'already expired: now')
})
