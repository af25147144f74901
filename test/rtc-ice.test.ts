import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import Fastify from 'fastify'
import { rtcSignalGateway, type RtcSignalGatewayOptions } from '../plugins/rtc-signal.js'
import { createJwtAuthenticator } from '../lib/auth/jwt.js'
import { anonymousTurnUser, iceServersFor, turnCredentials, turnPassword } from '../lib/rtc/turn.js'
import { requireTool, toolPath } from './helpers/tools.js'
import { JWT_SECRET, signToken } from './helpers/app.js'

const SECRET = 'north-secret'
const TURN = ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349?transport=tcp']
const STUN = ['stun:stun.example.com:3478']

async function build (t: Test, options: RtcSignalGatewayOptions = {}) {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(rtcSignalGateway, { closeTimeoutMs: 200, ...options })
  await app.ready()
  return app
}

/** base64(HMAC-SHA1(key, data)) computed by the openssl binary, independently of node:crypto; null without openssl. */
function opensslHmac (key: string, data: string): string | null {
  const openssl = toolPath('openssl')
  if (openssl === null) return null
  const raw = execFileSync(openssl, ['dgst', '-sha1', '-hmac', key, '-binary'], { input: data })
  return raw.toString('base64')
}

t.test('the TURN password is base64 HMAC-SHA1 of the username: known vectors', async (t) => {
  // RFC 2202 test case 2: HMAC-SHA1(key "Jefe", "what do ya want for nothing?") = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79 (hex),
  // whose base64 is the value below
  t.equal(turnPassword('Jefe', 'what do ya want for nothing?'), '7/zfauXrL6LSdBbV8YTfnCWafHk=')
  t.equal(Buffer.from('7/zfauXrL6LSdBbV8YTfnCWafHk=', 'base64').toString('hex'), 'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79')
  // derived once with: printf '%s' '1700003600:alice' | openssl dgst -sha1 -hmac 'north-secret' -binary | base64
  const credentials = turnCredentials(SECRET, 'alice', 3600, 1_700_000_000_000)
  t.same(credentials, { username: '1700003600:alice', credential: 'Ji4axghh2/aljHmsPgH9mtDGVLw=', expiresAt: 1_700_003_600 })
})

t.test('the TURN password matches the openssl binary for a fresh username', async (t) => {
  if (requireTool(t, 'openssl') === null) return
  const { username, credential } = turnCredentials(SECRET, 'user:ü-42', 600)
  t.equal(credential, opensslHmac(SECRET, username))
})

t.test('iceServersFor: STUN alone, TURN only with a secret, nothing when nothing is configured', async (t) => {
  t.same(iceServersFor({ stunUrls: [], turnUrls: [], turnTtlS: 60 }, 'u'), [])
  t.same(iceServersFor({ stunUrls: STUN, turnUrls: TURN, turnTtlS: 60 }, 'u'), [{ urls: STUN }], 'no secret: no TURN entry')
  t.same(iceServersFor({ stunUrls: [], turnUrls: TURN, turnSecret: SECRET, turnTtlS: 60 }, 'u', 1_000_000),
    [{ urls: TURN, ...credentialsOf(turnCredentials(SECRET, 'u', 60, 1_000_000)) }])
  t.not(anonymousTurnUser(), anonymousTurnUser(), 'anonymous ids are random')
  t.match(anonymousTurnUser(), /^anon-[0-9a-f]{16}$/)
})

function credentialsOf ({ username, credential }: { username: string, credential: string }) {
  return { username, credential }
}

t.test('GET /rtc/ice-servers lists STUN and TURN with time-limited credentials for the token\'s user, never cached', async (t) => {
  const app = await build(t, { authenticate: createJwtAuthenticator(JWT_SECRET), stunUrls: STUN, turnUrls: TURN, turnSecret: SECRET, turnTtlS: 900 })
  const before = Math.floor(Date.now() / 1000)
  const response = await app.inject({ url: '/rtc/ice-servers', headers: { authorization: `Bearer ${await signToken('alice')}` } })
  const after = Math.floor(Date.now() / 1000)
  t.equal(response.statusCode, 200)
  t.equal(response.headers['cache-control'], 'no-store')
  t.match(response.headers['content-type'], /^application\/json/)
  const body = response.json()
  t.equal(body.length, 2)
  t.same(body[0], { urls: STUN })
  t.same(body[1].urls, TURN)
  const [expiry, user] = [body[1].username.slice(0, body[1].username.indexOf(':')), body[1].username.slice(body[1].username.indexOf(':') + 1)]
  t.equal(user, 'alice')
  t.ok(Number(expiry) >= before + 900 && Number(expiry) <= after + 900, 'expires turnTtlS from now')
  t.equal(body[1].credential, turnPassword(SECRET, body[1].username))
  const independent = opensslHmac(SECRET, body[1].username)
  if (independent !== null) t.equal(body[1].credential, independent, 'openssl agrees')
  t.notOk(JSON.stringify(body).includes(SECRET), 'the secret itself is not served')
})

t.test('the token may come as ?token=; an anonymous caller gets a random user part', async (t) => {
  const app = await build(t, { authenticate: createJwtAuthenticator(JWT_SECRET), turnUrls: TURN, turnSecret: SECRET })
  const viaQuery = (await app.inject(`/rtc/ice-servers?token=${await signToken('bob')}`)).json()
  t.match(viaQuery[0].username, /^\d+:bob$/)
  const first = (await app.inject('/rtc/ice-servers')).json()
  const second = (await app.inject('/rtc/ice-servers')).json()
  t.match(first[0].username, /^\d+:anon-[0-9a-f]{16}$/)
  t.not(first[0].username, second[0].username)
})

t.test('a bad or expired token is 401 with WWW-Authenticate: Bearer', async (t) => {
  const app = await build(t, { authenticate: createJwtAuthenticator(JWT_SECRET), turnUrls: TURN, turnSecret: SECRET })
  for (const token of ['not-a-jwt', await signToken('carol', { expiresInS: -60 }), await signToken('carol', {}, 'another-secret-that-is-long-enough!!')]) {
    const response = await app.inject({ url: '/rtc/ice-servers', headers: { authorization: `Bearer ${token}` } })
    t.equal(response.statusCode, 401)
    t.equal(response.headers['www-authenticate'], 'Bearer')
    t.match(response.json(), { statusCode: 401, error: 'Unauthorized', code: 'GW_RTC_UNAUTHENTICATED' })
    t.notOk(response.body.includes('username'))
  }
})

t.test('an authenticate that returns no user for a token refuses it; one without a token may pass anonymous', async (t) => {
  const app = await build(t, { authenticate: (token) => token === 'good' ? { id: 'g' } : null, turnUrls: TURN, turnSecret: SECRET })
  t.equal((await app.inject('/rtc/ice-servers?token=other')).statusCode, 401)
  t.match((await app.inject('/rtc/ice-servers?token=good')).json()[0].username, /:g$/)
  t.equal((await app.inject('/rtc/ice-servers')).statusCode, 200)
  const throwing = await build(t, { authenticate: () => { throw new Error('db down: secret detail') } })
  const refused = await throwing.inject('/rtc/ice-servers')
  t.equal(refused.statusCode, 401)
  t.equal(refused.json().message, 'invalid token', 'the reason of an arbitrary error is not leaked')
})

t.test('Origin: same-origin and listed origins may read it (CORS, preflight included), another origin is 403', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://app.example'], stunUrls: STUN })
  const listed = await app.inject({ url: '/rtc/ice-servers', headers: { origin: 'https://app.example' } })
  t.equal(listed.statusCode, 200)
  t.equal(listed.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(listed.headers.vary, 'Origin')
  const same = await app.inject({ url: '/rtc/ice-servers', headers: { origin: 'http://app.local:8080', host: 'app.local:8080' } })
  t.equal(same.statusCode, 200)
  const other = await app.inject({ url: '/rtc/ice-servers', headers: { origin: 'https://evil.example' } })
  t.equal(other.statusCode, 403)
  t.equal(other.json().code, 'GW_RTC_ORIGIN_FORBIDDEN')
  const preflight = await app.inject({ method: 'OPTIONS', url: '/rtc/ice-servers', headers: { origin: 'https://app.example', 'access-control-request-headers': 'authorization' } })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-headers'], 'authorization')
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
  t.equal((await app.inject({ method: 'OPTIONS', url: '/rtc/ice-servers', headers: { origin: 'https://evil.example' } })).statusCode, 403)
  const any = await build(t, { allowedOrigins: ['*'] })
  const star = await any.inject({ url: '/rtc/ice-servers', headers: { origin: 'https://x.example' } })
  t.equal(star.headers['access-control-allow-origin'], '*')
  t.equal(star.headers.vary, undefined)
})

t.test('iceServersPath moves the route; false removes it; without configuration the list is empty', async (t) => {
  const moved = await build(t, { iceServersPath: '/ice' })
  t.same((await moved.inject('/ice')).json(), [])
  t.equal((await moved.inject('/rtc/ice-servers')).statusCode, 404)
  const none = await build(t, { iceServersPath: false })
  t.equal((await none.inject('/rtc/ice-servers')).statusCode, 404)
})

t.test('a TURN secret without TURN URLs is logged as a misconfiguration, never with the secret', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  t.after(() => app.close())
  await app.register(rtcSignalGateway, { turnSecret: 'very-secret-value' })
  await app.ready()
  t.ok(lines.some((line) => line.includes('no turnUrls')))
  t.notOk(lines.join('').includes('very-secret-value'))
  t.same((await app.inject('/rtc/ice-servers')).json(), [])
})
