import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import { wsGateway } from '../plugins/ws.js'
import { sseGateway } from '../plugins/sse.js'
import { rtcSignalGateway } from '../plugins/rtc-signal.js'
import { Admission } from '../lib/admission/admission.js'
import { createRoomAccess } from '../lib/admission/access.js'
import { createOriginPolicy, isOriginEntry, serialiseOrigin } from '../lib/admission/origin.js'
import { extractToken } from '../lib/admission/token.js'
import { AuthError, createJwtAuthenticator } from '../lib/auth/jwt.js'
import { createRoomPolicy } from '../lib/auth/policy.js'
import { loadConfig } from '../lib/config.js'
import { Frames, openWs, waitFor } from './helpers/ws-client.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

// The one admission check (lib/admission) as every transport sees it: the Origin judged on scheme, host and port, one
// credential rule, the composition of a host's join rule with user rooms, and the counters of connections.

const https = (host: string | undefined) => ({ protocol: 'https', host })
const http1 = (host: string | undefined) => ({ protocol: 'http', host })

t.test('same-origin is scheme, host and port: another scheme or port is another origin', async (t) => {
  const policy = createOriginPolicy([])
  t.equal(policy.allowed('https://app.example', https('app.example')), true)
  t.equal(policy.allowed('https://app.example', http1('app.example')), false, 'https page, http request')
  t.equal(policy.allowed('http://app.example', https('app.example')), false, 'http page, https request')
  t.equal(policy.allowed('https://app.example:443', https('app.example')), true, 'the default port is no port')
  t.equal(policy.allowed('http://app.example:80', http1('app.example:80')), true)
  t.equal(policy.allowed('https://app.example', https('app.example:8443')), false, 'another port')
  t.equal(policy.allowed('https://APP.example', https('app.EXAMPLE')), true, 'hosts compare case-insensitively')
  t.equal(policy.allowed('https://app.example/path', https('app.example')), false, 'an Origin has no path')
  t.equal(policy.allowed('not an origin', https('app.example')), false)
  t.equal(policy.allowed('https://app.example', { protocol: 'https', host: '' }), false, 'no host: nothing is same-origin')
  const listed = createOriginPolicy(['https://app.example'])
  t.equal(listed.allowed('http://app.example', http1('api.example')), false, 'a listed https origin does not admit its http twin')
  t.equal(listed.allowed('https://app.example', http1('api.example')), true)
  t.equal(listed.corsValue('https://app.example', http1('api.example')), 'https://app.example')
})

t.test('allow-list entries are origins or *; anything else is refused when the policy is built', async (t) => {
  t.ok(isOriginEntry('*'))
  t.ok(isOriginEntry('https://app.example'))
  t.ok(isOriginEntry('https://app.example/'))
  t.ok(isOriginEntry('http://localhost:3000'))
  t.notOk(isOriginEntry('app.example'), 'no scheme')
  t.notOk(isOriginEntry('https://app.example/path'))
  t.notOk(isOriginEntry('https://user:pw@app.example'))
  t.notOk(isOriginEntry('https://app.example?x=1'))
  t.equal(serialiseOrigin('chrome-extension://abcdef'), 'chrome-extension://abcdef', 'a non-special scheme keeps scheme://host')
  t.throws(() => createOriginPolicy(['app.example']), { code: 'GW_INVALID_OPTIONS', message: /not an origin/ })
  const app = Fastify()
  t.after(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { allowedOrigins: ['app.example'] }) },
    { code: 'GW_INVALID_OPTIONS', message: /allowedOrigins\.0: must be \* or an origin/ })
})

t.test('behind a trusted proxy the forwarded protocol and host decide same-origin; without trust, the socket\'s', async (t) => {
  const statusOf = async (trustProxy: boolean, headers: Record<string, string>) => {
    const app = Fastify({ trustProxy })
    t.after(() => app.close())
    await app.register(sseGateway)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    return await new Promise<number>((resolve, reject) => {
      const req = http.get({ port, host: '127.0.0.1', path: '/sse?room=public:a', headers }, (res) => {
        res.destroy()
        resolve(res.statusCode as number)
      })
      req.on('error', reject)
    })
  }
  const forwarded = { origin: 'https://app.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example' }
  t.equal(await statusOf(true, forwarded), 200, 'trusted: https://app.example is this very origin')
  t.equal(await statusOf(false, { ...forwarded, host: 'app.example' }), 403, 'not trusted: the request came over http')
  t.equal(await statusOf(false, { origin: 'http://app.example', host: 'app.example' }), 200)
})

t.test('the credential rule is the same before an upgrade, in an auth frame and on a stream', async (t) => {
  const failing = async (token: string | null) => {
    if (token === 'refused') throw new AuthError('account suspended')
    if (token === 'broken') throw new Error('db at 10.0.0.5 refused the connection')
    return token === 'nobody' ? null : token === null ? null : { id: token }
  }
  const admission = new Admission({ authenticate: failing })
  const reasonOf = async (token: string | null) => {
    const result = await admission.identify(token, {})
    return result.ok ? result.user : result.refusal
  }
  t.same(await reasonOf(null), null, 'no token: anonymous')
  t.same(await reasonOf('42'), { id: '42' })
  t.match(await reasonOf('refused'), { kind: 'unauthenticated', status: 401, reason: 'account suspended' }, 'an AuthError says why')
  t.match(await reasonOf('broken'), { reason: 'invalid token' }, 'a host error\'s own text stays on the server')
  t.match(await reasonOf('nobody'), { reason: 'no user for this token' }, 'a token without a user is refused')
  t.same(await reasonOf.call(null, 'x').then(() => new Admission().identify('anything', {})), { ok: true, user: null },
    'without authenticate a token changes nothing')

  const app = Fastify()
  t.after(() => app.close())
  await app.register(sseGateway, { authenticate: failing })
  await app.register(wsGateway, { authenticate: failing })
  const sse = await app.inject({ url: '/sse?room=public:a&token=broken' })
  t.equal(sse.statusCode, 401)
  t.match(sse.json(), { code: 'GW_SSE_UNAUTHENTICATED', message: 'invalid token' })
  t.equal(sse.headers['www-authenticate'], 'Bearer')
  t.match((await app.inject({ url: '/sse?room=public:a&token=nobody' })).json(), { statusCode: 401, message: 'no user for this token' })
  t.match((await app.inject({ url: '/sse?room=public:a&token=refused' })).json(), { statusCode: 401, message: 'account suspended' })
  let frames: Frames | undefined
  const ws = await app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.1' } } as never, { onInit: (socket) => { frames = new Frames(socket) } })
  t.after(() => { ws.terminate() })
  const socket = frames as Frames
  await socket.next()
  t.match(await socket.request({ op: 'auth', token: 'broken', ref: 1 }), { op: 'error', code: 'UNAUTHENTICATED', message: 'invalid token', ref: 1 })
  t.equal((await socket.waitClose()).code, 1008)
})

t.test('a host authorizeJoin decides every room but user rooms: a user always joins its own, never another\'s', async (t) => {
  const nothing = createRoomAccess({ authorizeJoin: () => false })
  t.equal(await nothing.canJoin({ id: '42' }, 'user:42'), true, 'a host rule that refuses everything does not lock users out of their own room')
  t.equal(await nothing.canJoin({ id: '42' }, 'public:a'), false)
  const everything = createRoomAccess({ authorizeJoin: () => true })
  t.equal(await everything.canJoin({ id: '7' }, 'user:42'), false)
  t.equal(await everything.canJoin(null, 'user:42'), false)
  t.equal(await everything.canJoin(null, 'team:x'), true)
  let asked = 0
  const counting = createRoomAccess({ authorizeJoin: () => { asked++; return false } })
  await counting.canJoin({ id: '1' }, 'user:1')
  await counting.canJoin({ id: '1' }, 'user:2')
  t.equal(asked, 0, 'user rooms never reach the host rule')
  const policy = createRoomPolicy({ publicRooms: ['public:*'] })
  const extended = createRoomAccess({ authorizeJoin: (user, room) => policy.canJoin(user, room) || room === 'vip' })
  t.equal(await extended.canJoin(null, 'public:a'), true, 'the documented way to extend the built-in rule')
  t.equal(await extended.canJoin(null, 'vip'), true)
  t.equal(await extended.canJoin(null, 'other'), false)
  const publish = createRoomAccess({ authorizeJoin: () => true, clientPublishRooms: ['chat:*'] })
  t.equal(await publish.canPublish(null, 'chat:1'), true, 'publish globs and the composed join rule')
  t.equal(await publish.canPublish(null, 'news'), false)

  const app = Fastify()
  t.after(() => app.close())
  const authenticate = async (token: string | null) => token === null ? null : { id: token }
  await app.register(sseGateway, { authenticate, authorizeJoin: () => false })
  await app.register(rtcSignalGateway, { authenticate, authorizeJoin: () => false, closeTimeoutMs: 100 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const own = await new Promise<number>((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: '/sse?room=user:42&token=42' }, (res) => { res.destroy(); resolve(res.statusCode as number) }).on('error', reject)
  })
  t.equal(own, 200, 'sse: its own user room')
  t.equal((await app.inject({ url: '/sse?room=public:a&token=42' })).statusCode, 403)
  const rtc = await openWs(`ws://127.0.0.1:${port}/rtc?token=42`)
  t.after(() => { rtc.ws.terminate() })
  await rtc.next()
  t.match(await rtc.request({ op: 'join', room: 'user:42', ref: 1 }), { op: 'joined', room: 'user:42', ref: 1 })
  t.match(await rtc.request({ op: 'join', room: 'public:a', ref: 2 }), { op: 'error', code: 'FORBIDDEN', ref: 2 })
})

t.test('the JWT authenticator refuses a secret shorter than 32 bytes when it is built', async (t) => {
  t.throws(() => createJwtAuthenticator(''), { code: 'GW_JWT_SECRET', message: /at least 32 bytes.*it has 0/ })
  t.throws(() => createJwtAuthenticator('x'.repeat(31)), { code: 'GW_JWT_SECRET' })
  t.throws(() => createJwtAuthenticator(undefined as unknown as string), { code: 'GW_JWT_SECRET' }, 'a missing secret from plain JavaScript')
  const verify = createJwtAuthenticator(JWT_SECRET)
  t.equal((await verify(await signToken('9')))?.id, '9')
  t.throws(() => loadConfig({ AUTH_JWT_SECRET: 'short-secret' }), { message: 'AUTH_JWT_SECRET: must have at least 32 bytes (HS256 keys are 256 bits)' },
    'server.ts stops at start-up naming the variable, never its value')
})

t.test('tokens: ?token= (the first of several, non-empty) before a Bearer header', async (t) => {
  t.equal(extractToken({ token: ['', 'b'] }, 'Bearer h'), 'h', 'an empty first ?token= is no token')
  t.equal(extractToken('not an object', 'bearer low'), 'low')
  t.equal(extractToken(null, undefined), null)
})

t.test('per-address limits are counted once a connection exists and released when it ends', async (t) => {
  const admission = new Admission({ maxConnectionsPerIp: 1 })
  const door = { origin: undefined, self: http1('h'), address: '10.0.0.9', token: null, request: {} }
  t.same(await admission.admit(door), { ok: true, user: null })
  t.equal(admission.acquire('10.0.0.9'), true)
  t.match(await admission.admit(door), { ok: false, refusal: { kind: 'capacity', status: 429, limit: 1 } })
  t.same(await admission.admit(door, { counted: false }), { ok: true, user: null }, 'a route that holds no connection is not counted')
  t.equal(admission.acquire('10.0.0.9'), false)
  admission.release('10.0.0.9')
  t.same(await admission.admit(door), { ok: true, user: null })
  const unlimited = new Admission()
  t.equal(unlimited.acquire('x'), true)
  unlimited.release('x')
  t.equal(unlimited.checkCapacity('x'), null)
})

t.test('a join rule or publish rule that throws refuses, and says why to the log only', async (t) => {
  const admission = new Admission({ authorizeJoin: () => { throw new Error('db down') }, authorizePublish: () => { throw new Error('db down') } })
  t.match(await admission.join(null, 'public:a'), { kind: 'forbidden', message: 'room public:a is not allowed', err: { message: 'db down' } })
  t.match(await admission.publish(null, 'public:a'), { allowed: false, err: { message: 'db down' } })
  t.match(await admission.join(null, 'public:b', { joined: new Set(['public:a']), maxRooms: 1 }), { kind: 'rooms-limit' })
  t.equal(await new Admission().join(null, 'public:a', { joined: new Set(['public:a']), maxRooms: 1 }), null, 'a room it is in is no new room')
  const sse = Fastify({ logger: false })
  t.after(() => sse.close())
  await sse.register(sseGateway, { authorizeJoin: () => { throw new Error('db down') } })
  t.match((await sse.inject({ url: '/sse?room=public:a' })).json(), { statusCode: 403, code: 'GW_SSE_ROOM_FORBIDDEN' }, 'sse: 403, not a 500')
})

async function listening (t: Test, register: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  t.after(() => app.close())
  await register(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

t.test('connections are counted per transport, and each end with its reason', async (t) => {
  const { app, port } = await listening(t, async (app) => {
    await app.register(wsGateway, { maxPayload: 256, closeTimeoutMs: 200 })
    await app.register(sseGateway)
  })
  const counters = app.rooms.counters
  const a = await openWs(`ws://127.0.0.1:${port}/ws`)
  await a.next()
  const b = await openWs(`ws://127.0.0.1:${port}/ws`)
  await b.next()
  t.equal(counters.connections.ws, 2)
  a.ws.close(1000)
  await waitFor(() => counters.disconnects.ws.client === 1, 5000, 'a client close')
  b.send({ op: 'publish', room: 'public:a', event: 'e', data: 'x'.repeat(400) })
  await b.waitClose()
  await waitFor(() => counters.disconnects.ws.too_large === 1, 5000, 'a close for a frame too large')
  t.equal(counters.connections.ws, 0)

  const stream = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: '/sse?room=public:a' }, resolve).on('error', reject)
  })
  await waitFor(() => counters.connections.sse === 1, 5000, 'an open stream')
  stream.destroy()
  await waitFor(() => counters.disconnects.sse.client === 1, 5000, 'a stream the client ended')
  t.equal(counters.connections.sse, 0)

  const c = await openWs(`ws://127.0.0.1:${port}/ws`)
  await c.next()
  await app.close()
  t.equal(counters.disconnects.ws.shutdown, 1)
  t.equal(counters.connections.ws, 0)
})

t.test('two upgrades racing past the per-address check: the one over the limit is closed with 1013', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  // a barrier in authenticate holds each upgrade until both have passed the per-address check
  let arrived = 0
  let bothIn: () => void = () => {}
  const barrier = new Promise<void>((resolve) => { bothIn = resolve })
  const authenticate = async () => {
    if (++arrived === 2) bothIn()
    await barrier
    return null
  }
  await app.register(wsGateway, { maxConnectionsPerIp: 1, closeTimeoutMs: 100, authenticate })
  await app.ready()
  const open = async () => {
    let frames: Frames | undefined
    const socket = await app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.7' } } as never, { onInit: (ws) => { frames = new Frames(ws) } })
    t.after(() => { socket.terminate() })
    return frames as Frames
  }
  // both pass the admission check before either connection is counted
  const [a, b] = await Promise.all([open(), open()])
  const outcomes = await Promise.all([a, b].map(async (frames) => await Promise.race([
    frames.next().then((frame: { op: string }) => frame.op),
    frames.waitClose().then(({ code, reason }) => `${code} ${reason}`)
  ])))
  t.same(outcomes.sort(), ['1013 too many connections', 'hello'])
  t.equal(app.rooms.counters.connections.ws, 1, 'only the admitted one is counted')
})
