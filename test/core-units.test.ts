import t from 'tap'
import { compareIds, formatId, newEpoch, parseId } from '../lib/rooms/ids.js'
import { compileGlobs, isRoomName } from '../lib/rooms/names.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { createRoomPolicy } from '../lib/auth/policy.js'
import { createOriginPolicy } from '../lib/admission/origin.js'
import { extractToken } from '../lib/admission/token.js'
import { TokenBucket } from '../lib/limits/token-bucket.js'
import { IpCounter } from '../lib/limits/ip-counter.js'
import { redactUrl } from '../lib/log.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

t.test('ids round-trip, order within an epoch and refuse to order across epochs', async (t) => {
  const epoch = newEpoch()
  t.match(epoch, /^[a-z0-9]+$/)
  t.same(parseId(formatId(epoch, 42)), { epoch, offset: 42 })
  t.equal(parseId('nope'), null)
  t.equal(parseId(7), null)
  t.equal(parseId(`${epoch}-99999999999999999`), null, 'past safe integers')
  t.ok(compareIds(formatId(epoch, 2), formatId(epoch, 10)) < 0)
  t.ok(Number.isNaN(compareIds(formatId(epoch, 2), formatId(newEpoch(), 1))))
  t.ok(Number.isNaN(compareIds('x', formatId(epoch, 1))))
})

t.test('room globs match whole names with * and ?', async (t) => {
  const globs = compileGlobs(['public:*', 'team.?', ' ', 'a+b'])
  t.same(globs.patterns, ['public:*', 'team.?', 'a+b'])
  t.ok(globs.matches('public:lobby'))
  t.ok(globs.matches('public:'))
  t.notOk(globs.matches('xpublic:lobby'))
  t.ok(globs.matches('team.1'))
  t.notOk(globs.matches('team.12'))
  t.notOk(globs.matches('teamx1'), 'a dot is literal')
  t.ok(globs.matches('a+b'))
  t.notOk(compileGlobs([]).matches('anything'))
  t.ok(compileGlobs(['*']).matches('anything'))
  t.ok(isRoomName('user:42'))
  t.notOk(isRoomName('user/42'))
})

t.test('the JWT authenticator accepts HS256 tokens and refuses the rest', async (t) => {
  const authenticate = createJwtAuthenticator(JWT_SECRET)
  t.equal(await authenticate(null, {}), null, 'no token is anonymous')
  const user = await authenticate(await signToken('42', { rooms: ['team:*'] }), {})
  t.equal(user?.id, '42')
  t.same(user?.rooms, ['team:*'])
  await t.rejects(async () => authenticate('not.a.jwt', {}), { code: 'GW_UNAUTHENTICATED', message: 'invalid token' })
  await t.rejects(async () => authenticate(await signToken('42', {}, 'another-secret-of-enough-length-000000'), {}), { message: 'invalid token' })
  await t.rejects(async () => authenticate(await signToken('42', { expiresInS: -60 }), {}), { message: 'token expired' })
  const { SignJWT } = await import('jose')
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(JWT_SECRET))
  await t.rejects(async () => authenticate(noSub, {}), { message: 'token lacks a valid sub or rooms claim' })
  const badRooms = await new SignJWT({ rooms: 'all' }).setSubject('1').setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(JWT_SECRET))
  await t.rejects(async () => authenticate(badRooms, {}), { message: 'token lacks a valid sub or rooms claim' })
  const hs512 = await new SignJWT({}).setSubject('1').setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(JWT_SECRET))
  await t.rejects(async () => authenticate(hs512, {}), { message: 'invalid token' }, 'only HS256')
})

t.test('the room policy keeps user rooms private and honours claims and public globs', async (t) => {
  const policy = createRoomPolicy({ publicRooms: ['public:*'], clientPublishRooms: ['public:chat*', 'team:*', 'user:*'] })
  const alice = { id: 'alice', rooms: ['team:red', 'user:*'] }
  t.equal(policy.canJoin(alice, 'user:alice'), true)
  t.equal(policy.canJoin(alice, 'user:bob'), false, 'even with a user:* claim')
  t.equal(policy.canJoin(null, 'user:alice'), false)
  t.equal(policy.canJoin(alice, 'team:red'), true)
  t.equal(policy.canJoin(alice, 'team:blue'), false)
  t.equal(policy.canJoin(null, 'public:lobby'), true)
  t.equal(policy.canJoin(null, 'team:red'), false)
  t.equal(policy.canPublish(null, 'public:chat'), true)
  t.equal(policy.canPublish(null, 'public:news'), false, 'not a publish room')
  t.equal(policy.canPublish(null, 'team:red'), false, 'publishing needs the right to join')
  t.equal(policy.canPublish(alice, 'team:red'), true)
  t.equal(policy.canPublish(alice, 'user:bob'), false)
  const defaults = createRoomPolicy()
  t.equal(defaults.canJoin(null, 'public:x'), true)
  t.equal(defaults.canPublish(null, 'public:x'), false, 'clients publish nowhere by default')
})

t.test('the origin policy is same-origin by default and * only when listed', async (t) => {
  const https = (host: string | undefined) => ({ protocol: 'https', host })
  const same = createOriginPolicy([])
  t.equal(same.allowed(undefined, https('example.com')), true, 'no Origin: not a browser')
  t.equal(same.allowed('https://example.com', https('example.com')), true)
  t.equal(same.allowed('https://example.com:8443', https('example.com:8443')), true)
  t.equal(same.allowed('https://evil.com', https('example.com')), false)
  t.equal(same.allowed('null', https('example.com')), false)
  t.equal(same.allowed('https://example.com', https(undefined)), false)
  t.equal(same.corsValue('https://evil.com', https('example.com')), null)
  t.equal(same.corsValue(undefined, https('example.com')), null)
  const listed = createOriginPolicy(['https://app.example.com/'])
  t.equal(listed.allowed('https://APP.example.com', https('api.example.com')), true)
  t.equal(listed.corsValue('https://app.example.com', https('api.example.com')), 'https://app.example.com')
  const any = createOriginPolicy(['*'])
  t.equal(any.allowed('https://whatever.io', https('x')), true)
  t.equal(any.corsValue('https://whatever.io', https('x')), '*')
})

t.test('tokens come from ?token= first, then a Bearer header', async (t) => {
  t.equal(extractToken({ token: 'q' }, 'Bearer h'), 'q')
  t.equal(extractToken({ token: ['a', 'b'] }, undefined), 'a')
  t.equal(extractToken({}, 'Bearer h.e.y'), 'h.e.y')
  t.equal(extractToken({}, 'Basic abc'), null)
  t.equal(extractToken(undefined, undefined), null)
  t.equal(extractToken({ token: '' }, undefined), null)
})

t.test('the token bucket allows a burst and then the rate', async (t) => {
  let now = 0
  const bucket = new TokenBucket(10, 3, () => now)
  t.same([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false])
  now += 100
  t.equal(bucket.take(), true, 'one token after 100 ms at 10/s')
  t.equal(bucket.take(), false)
  now += 10_000
  t.same([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false], 'never above the burst')
})

t.test('the per-IP counter bounds connections and forgets released addresses', async (t) => {
  const counter = new IpCounter(2)
  t.same([counter.acquire('a'), counter.acquire('a'), counter.acquire('a'), counter.acquire('b')], [true, true, false, true])
  counter.release('a')
  t.equal(counter.count('a'), 1)
  t.equal(counter.acquire('a'), true)
  counter.release('a')
  counter.release('a')
  counter.release('a')
  t.equal(counter.count('a'), 0)
})

t.test('credentials in logged URLs are redacted', async (t) => {
  t.equal(redactUrl('/ws?token=abc.def&room=x'), '/ws?token=[redacted]&room=x')
  t.equal(redactUrl('/sse?room=a&TOKEN=zzz'), '/sse?room=a&TOKEN=[redacted]')
  t.equal(redactUrl('/health'), '/health')
})
