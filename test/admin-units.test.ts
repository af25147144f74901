import t from 'tap'
import { SessionStore, csrfMatches } from '../lib/admin/sessions.js'
import { CountersSampler } from '../lib/admin/sampler.js'
import { GatewayCounters } from '../lib/metrics/counters.js'
import { readCookie, sessionCookie } from '../lib/admin/cookie.js'

t.test('sessions expire after their ttl and are capped: a new login pushes out the oldest', async (t) => {
  let now = 1_000_000
  const store = new SessionStore({ ttlMs: 1000, maxSessions: 2, now: () => now })
  const a = store.create()
  now += 100
  const b = store.create()
  t.ok(store.get(a.id) !== null && store.get(b.id) !== null)
  t.match(a.id, /^[A-Za-z0-9_-]{43}$/, '256 random bits')
  t.not(a.session.csrfToken, b.session.csrfToken)
  now += 100
  const c = store.create()
  t.equal(store.size, 2)
  t.equal(store.get(a.id), null, 'the oldest went')
  t.ok(store.get(c.id))
  now += 900
  t.equal(store.get(b.id), null, 'expired')
  t.ok(store.get(c.id), 'the newer one lives on')
  now += 100
  store.create()
  t.equal(store.size, 1, 'expired sessions are swept on login')
  t.equal(store.get(null), null)
  t.equal(store.get(''), null)
  t.equal(store.get('x'.repeat(200)), null, 'an over-long cookie is not even hashed')
  t.equal(store.delete(undefined), false)
  t.ok(csrfMatches(c.session, c.session.csrfToken))
  t.notOk(csrfMatches(c.session, `${c.session.csrfToken}x`))
  t.notOk(csrfMatches(c.session, ['x']))
  store.clear()
  t.equal(store.size, 0)
})

t.test('the cookie reader and writer', async (t) => {
  t.equal(readCookie('a=1; gw_admin=abc; b=2', 'gw_admin'), 'abc')
  t.equal(readCookie('gw_admin', 'gw_admin'), null)
  t.equal(readCookie(undefined, 'gw_admin'), null)
  t.equal(sessionCookie('n', 'v', { path: '/p', maxAgeS: 5, secure: true }), 'n=v; Path=/p; Max-Age=5; HttpOnly; SameSite=Strict; Secure')
})

t.test('the sampler: rates over the window from counter snapshots, sampling only while touched', async (t) => {
  let now = 0
  const counters = new GatewayCounters()
  const sampler = new CountersSampler(counters, { intervalMs: 1000, keep: 5, windowMs: 3000, idleMs: 2500, now: () => now })
  t.same(sampler.rates(), { published: 0, delivered: 0, deliveries: {}, windowS: 0 })
  sampler.touch()
  t.ok(sampler.running)
  t.equal(sampler.series().length, 1)
  sampler.touch()
  t.equal(sampler.series().length, 1, 'not twice in one interval')
  for (let second = 1; second <= 6; second++) {
    now = second * 1000
    counters.eventsPublished += 10
    counters.delivered('ws', 20)
    counters.delivered('sse', 5)
    sampler.touch()
  }
  t.equal(sampler.series().length, 5, 'keeps the last five')
  t.same(sampler.rates(), { published: 10, delivered: 25, deliveries: { ws: 20, sse: 5, rtc: 0 }, windowS: 3 })
  sampler.stop()
  t.notOk(sampler.running)
  sampler.touch()
  t.ok(sampler.running, 'touched again: running again')
  sampler.stop()
})

t.test('the sampler stops by itself once nobody looks', async (t) => {
  const counters = new GatewayCounters()
  const sampler = new CountersSampler(counters, { intervalMs: 20, keep: 10, windowMs: 100, idleMs: 50 })
  sampler.touch()
  const deadline = Date.now() + 5000
  while (sampler.running && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.notOk(sampler.running, 'stopped after idleMs without a touch')
  t.ok(sampler.series().length >= 2, 'it sampled meanwhile')
})
