import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { admin, type AdminOptions } from '../plugins/admin.js'
import { wsGateway } from '../plugins/ws.js'
import { rooms } from '../plugins/rooms.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import type { Member } from '../lib/rooms/types.js'
import type { NodeControl } from '../lib/rooms/bus.js'
import { buildTestApp, logCapture } from './helpers/app.js'
import { Frames } from './helpers/ws-client.js'

const PASSWORD = 'correct horse battery staple'

async function build (t: Test, options: Partial<AdminOptions> = {}, setup?: (app: FastifyInstance) => Promise<void>) {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream }, trustProxy: true })
  t.after(() => app.close())
  await setup?.(app)
  await app.register(admin, { password: PASSWORD, ...options } as AdminOptions)
  await app.ready()
  return { app, logs }
}

async function login (app: FastifyInstance, path = '/admin') {
  const res = await app.inject({ method: 'POST', url: `${path}/login`, payload: { password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  const cookie = String(res.headers['set-cookie']).split(';')[0]
  return { cookie, csrf: res.json().csrfToken as string }
}

function member (app: FastifyInstance, user: string | null, inbox: unknown[] = []): Member {
  return { id: app.rooms.nextMemberId(), user, transport: 'test', encoder: { name: 'json', encode: (e) => e.dataJson }, deliver: (d) => { inbox.push(d) } }
}

/** The page works under its CSP: no inline script or style, no event handler attributes. */
function assertNoInline (t: Test, html: string) {
  t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script')
  t.notMatch(html, /<style/i, 'no style element')
  t.notMatch(html, /\sstyle=/i, 'no style attribute')
  t.notMatch(html, /\son[a-z]+=/i, 'no event handler attribute')
}

t.test('without a login: /admin is the login form and every /admin/api/... route answers 401', async (t) => {
  const { app } = await build(t)
  const page = await app.inject('/admin')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<form id="login" method="post" action="\/admin\/login">/)
  t.notMatch(page.body, /id="rooms"/, 'not the dashboard')
  t.match(page.headers['content-security-policy'], /default-src 'none'; script-src 'self'; style-src 'self'/)
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.equal(page.headers['referrer-policy'], 'same-origin')
  t.equal(page.headers['cache-control'], 'no-store')
  assertNoInline(t, page.body)
  for (const [method, url] of [['GET', '/admin/api/session'], ['GET', '/admin/api/overview'], ['GET', '/admin/api/rooms'],
    ['GET', '/admin/api/rooms/public:a'], ['POST', '/admin/api/publish'], ['GET', '/admin/api/nothing-here'], ['DELETE', '/admin/api/x/y']] as const) {
    const res = await app.inject({ method, url, ...(method === 'POST' ? { payload: { room: 'public:a', event: 'e' } } : {}) })
    t.equal(res.statusCode, 401, `${method} ${url}`)
    t.match(res.json(), { statusCode: 401, error: 'Unauthorized', code: 'GW_ADMIN_UNAUTHORIZED' })
  }
  const forged = await app.inject({ url: '/admin/api/session', headers: { cookie: 'gw_admin=forged-session-id' } })
  t.equal(forged.statusCode, 401, 'an unknown session id')
  const js = await app.inject('/admin/admin.js')
  t.equal(js.statusCode, 200, 'the assets are public')
  t.match(js.headers['content-type'], /^text\/javascript/)
  t.equal((await app.inject({ url: '/admin/admin.js', headers: { 'if-none-match': js.headers.etag as string } })).statusCode, 304)
  t.match((await app.inject('/admin/admin.css')).headers['content-type'], /^text\/css/)
})

t.test('a wrong password is 401 (JSON or the form again) and logins are rate limited per address', async (t) => {
  const { app, logs } = await build(t, { loginRateLimit: { max: 3, timeWindowMs: 60_000 } })
  const wrong = await app.inject({ method: 'POST', url: '/admin/login', payload: { password: 'guess' } })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.json(), { statusCode: 401, error: 'Unauthorized', message: 'wrong password' })
  t.notOk(wrong.headers['set-cookie'], 'no session')
  const form = await app.inject({ method: 'POST', url: '/admin/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'password=guess2' })
  t.equal(form.statusCode, 401)
  t.match(form.headers['content-type'], /^text\/html/)
  t.match(form.body, /<p class="message" id="login-message" role="alert">wrong password<\/p>/)
  const missing = await app.inject({ method: 'POST', url: '/admin/login', payload: {} })
  t.equal(missing.statusCode, 400, 'no password at all')
  const limited = await app.inject({ method: 'POST', url: '/admin/login', payload: { password: PASSWORD } })
  t.equal(limited.statusCode, 429, 'the fourth attempt is refused, even with the right password')
  t.match(limited.json(), { statusCode: 429, code: 'GW_ADMIN_RATE_LIMITED' })
  const limitedForm = await app.inject({ method: 'POST', url: '/admin/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `password=${encodeURIComponent(PASSWORD)}` })
  t.equal(limitedForm.statusCode, 429)
  t.match(limitedForm.body, /too many login attempts/)
  const other = await app.inject({ method: 'POST', url: '/admin/login', remoteAddress: '10.0.0.9', payload: { password: PASSWORD } })
  t.equal(other.statusCode, 200, 'another address is not limited')
  t.notOk(logs.text().includes(PASSWORD), 'the password is never logged')
  t.match(logs.text(), /admin login refused: wrong password/)
})

t.test('login starts a session: an HttpOnly SameSite=Strict cookie (Secure behind https); logout ends it', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/admin/login', payload: { password: PASSWORD } })
  t.equal(res.statusCode, 200)
  const setCookie = String(res.headers['set-cookie'])
  t.match(setCookie, /^gw_admin=[A-Za-z0-9_-]{43}; Path=\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/)
  t.match(res.json(), { csrfToken: String, expiresAt: Number, refreshMs: 1000, instanceId: app.rooms.instanceId })
  const cookie = setCookie.split(';')[0]

  const page = await app.inject({ url: '/admin', headers: { cookie } })
  t.match(page.body, /<tbody id="rooms"><\/tbody>/, 'the dashboard')
  t.match(page.body, /<script type="module" src="\/admin\/admin.js"><\/script>/)
  assertNoInline(t, page.body)
  const session = await app.inject({ url: '/admin/api/session', headers: { cookie } })
  t.equal(session.statusCode, 200)
  t.equal(session.json().csrfToken, res.json().csrfToken)
  t.equal(session.headers['cache-control'], 'no-store')
  t.equal((await app.inject({ url: '/admin/api/nothing-here', headers: { cookie } })).statusCode, 404, 'an unknown API route with a session')

  const secure = await app.inject({ method: 'POST', url: '/admin/login', headers: { 'x-forwarded-proto': 'https' }, payload: { password: PASSWORD } })
  t.match(String(secure.headers['set-cookie']), /; HttpOnly; SameSite=Strict; Secure$/, 'Secure behind an https proxy')

  const form = await app.inject({ method: 'POST', url: '/admin/login', headers: { 'content-type': 'application/x-www-form-urlencoded', host: 'admin.example:3000', origin: 'http://admin.example:3000' }, payload: `password=${encodeURIComponent(PASSWORD)}` })
  t.equal(form.statusCode, 303, 'a form login goes back to the page')
  t.equal(form.headers.location, '/admin')

  const out = await app.inject({ method: 'POST', url: '/admin/logout', headers: { cookie } })
  t.equal(out.statusCode, 204)
  t.match(String(out.headers['set-cookie']), /^gw_admin=; Path=\/admin; Max-Age=0; HttpOnly; SameSite=Strict$/)
  t.equal((await app.inject({ url: '/admin/api/session', headers: { cookie } })).statusCode, 401, 'the session is gone')
  t.notMatch((await app.inject({ url: '/admin', headers: { cookie } })).body, /id="rooms"/)
  const formOut = await app.inject({ method: 'POST', url: '/admin/logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '' })
  t.equal(formOut.statusCode, 303)
  t.equal((await app.inject({ method: 'POST', url: '/admin/logout', headers: { origin: 'https://evil.example' } })).statusCode, 403, 'cross-origin logout refused')
})

t.test('the API: overview with connections and rates, rooms with members and users, room detail', async (t) => {
  const { app } = await build(t, {}, async (app) => { await app.register(wsGateway, { closeTimeoutMs: 100 }) })
  const { cookie } = await login(app)
  const get = async (url: string) => await app.inject({ url, headers: { cookie } })
  for (const [room, users] of [['public:lobby', ['alice', 'bob', 'bob', null]], ['public:quiet', [null]], ['orders:7', ['carol']]] as const) {
    for (const user of users) app.rooms.join(room, member(app, user))
  }
  const ws = await app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.1' } } as never)
  t.after(() => { ws.terminate() })
  const overview = (await get('/admin/api/overview')).json()
  t.match(overview, {
    instanceId: app.rooms.instanceId,
    bus: { name: 'memory', up: true },
    connections: { ws: 1, sse: 0, rtc: 0 },
    localRooms: 3,
    rates: { published: 0, delivered: 0 },
    series: { at: [], published: [], delivered: [] },
    totals: { eventsPublished: 0, webhooks: { stripe: { rejected: 0 } }, streamMessages: { kafka: { dead_lettered: 0 } } },
    instances: null
  })
  t.type(overview.uptimeS, 'number')

  const rooms = (await get('/admin/api/rooms')).json()
  t.same(rooms, {
    total: 3,
    rooms: [
      { room: 'public:lobby', members: 4, users: ['alice', 'bob'], usersTotal: 2 },
      { room: 'orders:7', members: 1, users: ['carol'], usersTotal: 1 },
      { room: 'public:quiet', members: 1, users: [], usersTotal: 0 }
    ]
  }, 'largest first, then by name; distinct users')
  t.same((await get('/admin/api/rooms?prefix=public:&limit=1')).json(), { total: 3, rooms: [rooms.rooms[0]] })
  t.equal((await get('/admin/api/rooms?limit=0')).statusCode, 400)
  t.equal((await get('/admin/api/rooms?other=1')).statusCode, 400)
  t.same((await get('/admin/api/rooms/orders:7')).json(), { room: 'orders:7', members: 1, users: ['carol'], usersTotal: 1 })
  t.same((await get('/admin/api/rooms/empty')).json(), { room: 'empty', members: 0, users: [], usersTotal: 0 })
  t.equal((await get('/admin/api/rooms/bad%20room')).statusCode, 400)

  for (let i = 0; i < 60; i++) app.rooms.join('public:many', member(app, `user-${String(i).padStart(2, '0')}`))
  const many = (await get('/admin/api/rooms/public:many')).json()
  t.equal(many.users.length, 50, 'at most 50 users listed')
  t.equal(many.usersTotal, 60)
})

t.test('publishing from the API needs the CSRF token and the same origin, and reaches the room', async (t) => {
  const { app, logs } = await build(t, { bodyLimit: 1024 }, async (app) => { await app.register(wsGateway, { closeTimeoutMs: 100 }) })
  const { cookie, csrf } = await login(app)
  let frames: Frames | undefined
  const ws = await app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.1' } } as never, { onInit: (socket) => { frames = new Frames(socket) } })
  t.after(() => { ws.terminate() })
  if (frames === undefined) throw new Error('no socket')
  await frames.next()
  t.same(await frames.request({ op: 'join', room: 'public:news' }), { op: 'joined', room: 'public:news' })
  const body = { room: 'public:news', event: 'announcement', data: { text: 'hello' } }
  const post = async (headers: Record<string, string>, payload: unknown = body) =>
    await app.inject({ method: 'POST', url: '/admin/api/publish', headers: { cookie, ...headers }, payload: payload as object })

  t.equal((await post({})).statusCode, 403, 'no CSRF token')
  t.match((await post({ 'x-csrf-token': 'wrong' })).json(), { statusCode: 403, code: 'GW_ADMIN_FORBIDDEN', message: 'missing or wrong X-CSRF-Token' })
  t.equal((await post({ 'x-csrf-token': csrf, origin: 'https://evil.example' })).statusCode, 403, 'another origin')
  t.equal((await post({ 'x-csrf-token': csrf, 'sec-fetch-site': 'cross-site' })).statusCode, 403, 'a cross-site fetch')
  t.equal((await post({ 'x-csrf-token': csrf }, { room: 'bad room', event: 'e' })).statusCode, 400)
  t.equal((await post({ 'x-csrf-token': csrf }, { room: 'public:news', event: 'e', extra: 1 })).statusCode, 400)
  t.equal((await post({ 'x-csrf-token': csrf }, { room: 'public:news', event: 'e', data: 'x'.repeat(2000) })).statusCode, 413, 'bodyLimit')
  t.equal(frames.unread.length, 0, 'nothing was published so far')

  const ok = await post({ 'x-csrf-token': csrf, host: 'admin.example', 'x-forwarded-proto': 'https', origin: 'https://admin.example', 'sec-fetch-site': 'same-origin' })
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { id: String, delivered: 1 })
  t.same(await frames.next(), { op: 'event', room: 'public:news', event: 'announcement', data: { text: 'hello' }, id: ok.json().id })
  const bare = await post({ 'x-csrf-token': csrf }, { room: 'public:news', event: 'ping' })
  t.match(await frames.next(), { event: 'ping', data: null }, 'data defaults to null')
  t.equal(bare.statusCode, 200)
  t.match(logs.text(), /admin published an event/)
})

t.test('secureCookie: true or false overrides what the request says; an empty login body is a 400', async (t) => {
  const always = await build(t, { secureCookie: true })
  t.match(String((await always.app.inject({ method: 'POST', url: '/admin/login', payload: { password: PASSWORD } })).headers['set-cookie']), /; Secure$/)
  t.match(String((await always.app.inject({ method: 'POST', url: '/admin/logout' })).headers['set-cookie']), /Max-Age=0; HttpOnly; SameSite=Strict; Secure$/)
  const never = await build(t, { secureCookie: false })
  const res = await never.app.inject({ method: 'POST', url: '/admin/login', headers: { 'x-forwarded-proto': 'https' }, payload: { password: PASSWORD } })
  t.notMatch(String(res.headers['set-cookie']), /Secure/)
  t.equal((await never.app.inject({ method: 'POST', url: '/admin/login' })).statusCode, 400)
})

t.test('the instances of a deployment come from the bus; one that cannot tell lists none', async (t) => {
  let live: () => Promise<ReadonlySet<string> | null> = async () => null
  class Deployment extends MemoryBus {
    readonly control: NodeControl = { start () {}, direct: () => false, liveInstances: async () => await live(), instanceTtlMs: 15_000 }
  }
  const { app } = await build(t, {}, async (app) => { await app.register(rooms, { bus: new Deployment({ historySize: 10 }) }) })
  const { cookie } = await login(app)
  const overview = async () => (await app.inject({ url: '/admin/api/overview', headers: { cookie } })).json().instances
  t.equal(await overview(), null)
  live = async () => new Set(['ffff0000', app.rooms.instanceId])
  t.same(await overview(), [{ id: app.rooms.instanceId, self: true }, { id: 'ffff0000', self: false }].sort((a, b) => a.id < b.id ? -1 : 1))
  live = async () => { throw new Error('redis down') }
  t.equal(await overview(), null, 'an error reads as "cannot tell"')
})

t.test('a verify function instead of a password; one that throws refuses the login', async (t) => {
  let calls = 0
  const { app, logs } = await build(t, {
    password: undefined,
    verify: async (password) => {
      calls++
      if (password === 'explode') throw new Error('user store down')
      return password === 'from-the-host-store'
    }
  })
  t.equal((await app.inject({ method: 'POST', url: '/admin/login', payload: { password: 'from-the-host-store' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/admin/login', payload: { password: 'explode' } })).statusCode, 401)
  t.equal(calls, 2)
  t.match(logs.text(), /admin password check failed/)
})

t.test('another path; bad options are refused by name', async (t) => {
  const { app } = await build(t, { path: '/ops/dashboard' })
  t.match((await app.inject('/ops/dashboard')).body, /action="\/ops\/dashboard\/login"/)
  const { cookie } = await login(app, '/ops/dashboard')
  t.match(cookie, /^gw_admin=/)
  t.equal((await app.inject({ url: '/ops/dashboard/api/session', headers: { cookie } })).statusCode, 200)
  for (const [options, message] of [
    [{}, /give either password or verify/],
    [{ password: PASSWORD, verify: () => true }, /give either password or verify/],
    [{ password: 'short' }, /password: must be at least 8 characters/],
    [{ password: PASSWORD, path: '/admin/' }, /path: must be a path/],
    [{ password: PASSWORD, root: '/nonexistent' }, /root: cannot read index.html in \/nonexistent \(ENOENT\)/]
  ] as const) {
    await t.rejects(async () => {
      const bad = Fastify()
      await bad.register(admin, options as never)
      await bad.ready()
    }, { code: 'GW_INVALID_OPTIONS', message }, JSON.stringify(options))
  }
})

t.test('server.ts serves /admin with ADMIN_PASSWORD and not without', async (t) => {
  const on = await buildTestApp({ GATEWAYS: 'ws', ADMIN_PASSWORD: PASSWORD })
  t.after(() => on.app.close())
  t.equal((await on.app.inject({ method: 'POST', url: '/admin/login', payload: { password: PASSWORD } })).statusCode, 200)
  t.equal((await on.app.inject('/admin/api/overview')).statusCode, 401)
  t.notOk(on.logs.text().includes(PASSWORD))
  const off = await buildTestApp({ GATEWAYS: 'ws' })
  t.after(() => off.app.close())
  t.equal((await off.app.inject('/admin')).statusCode, 404)
})
