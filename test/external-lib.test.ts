import t from 'tap'
import { Webhook as StandardWebhook } from 'standardwebhooks'
import { Webhook as SvixWebhook } from 'svix'
import { ApiKeyTable, bearerKey } from '../lib/external/api-keys.js'
import { Idempotency, canonicalJson, requestFingerprint } from '../lib/external/idempotency.js'
import { WebhookVerifier, decodeSecret, signWebhook } from '../lib/external/standard-webhooks.js'
import { buildOpenApi } from '../lib/external/openapi.js'
import { decodePayload } from '../routes/external-hooks.js'
import { MemoryDedupeStore } from '../lib/stores/dedupe.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests walk JSON documents (answers, the OpenAPI document) loosely
type Json = any

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const OTHER = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'

t.test('an API key is found by its key and known by its name only', async (t) => {
  const table = new ApiKeyTable({ alpha: 'key-alpha-123', beta: { key: 'key-beta-456', rooms: ['orders:*'] } })
  t.same(table.names, ['alpha', 'beta'])
  t.equal(table.lookup('key-alpha-123')?.name, 'alpha')
  t.equal(table.lookup('key-beta-456')?.name, 'beta')
  t.equal(table.lookup('key-alpha-12'), null, 'a prefix is not the key')
  t.equal(table.lookup('key-alpha-1234'), null, 'a longer string is not the key')
  t.equal(table.lookup(''), null)
  t.notOk(JSON.stringify(table.lookup('key-alpha-123')).includes('key-alpha-123'), 'the key is not kept on the entry')
})

t.test('a key limited to room globs allows only those rooms', async (t) => {
  const table = new ApiKeyTable({ alpha: 'a', beta: { key: 'b', rooms: ['orders:*', 'public:news'] } })
  const alpha = table.lookup('a')
  const beta = table.lookup('b')
  t.equal(alpha?.rooms, null)
  t.ok(alpha?.allows('anything'))
  t.same(beta?.rooms, ['orders:*', 'public:news'])
  t.ok(beta?.allows('orders:42'))
  t.ok(beta?.allows('public:news'))
  t.notOk(beta?.allows('public:sports'))
})

t.test('two names with the same key are refused', async (t) => {
  t.throws(() => new ApiKeyTable({ a: 'same', b: { key: 'same' } }), /the API keys a and b are the same key/)
})

t.test('only a Bearer authorization carries a key', async (t) => {
  t.equal(bearerKey('Bearer abc'), 'abc')
  t.equal(bearerKey('bearer  abc '), 'abc')
  t.equal(bearerKey('Basic abc'), null)
  t.equal(bearerKey('Bearer'), null)
  t.equal(bearerKey('Bearer a b'), null)
  t.equal(bearerKey(undefined), null)
})

t.test('signatures of the standardwebhooks and svix signers verify', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const body = JSON.stringify({ type: 'invoice.paid', amount: 42, note: 'héllo ✓' })
  const verifier = new WebhookVerifier([SECRET])
  const standard = new StandardWebhook(SECRET).sign('msg_1', new Date(now * 1000), body)
  const svix = new SvixWebhook(SECRET).sign('msg_1', new Date(now * 1000), body)
  t.equal(signWebhook(SECRET, 'msg_1', now, body), standard, 'our signer matches standardwebhooks')
  t.equal(svix, standard, 'svix and standardwebhooks agree')
  t.same(verifier.verify({ id: 'msg_1', timestamp: String(now), signature: standard }, Buffer.from(body)), { ok: true, id: 'msg_1', timestamp: now })
  // and the other way round: the packages accept what we sign
  const ours = signWebhook(SECRET, 'msg_2', now, body)
  const headers = { 'webhook-id': 'msg_2', 'webhook-timestamp': String(now), 'webhook-signature': ours }
  t.same(new StandardWebhook(SECRET).verify(body, headers), JSON.parse(body))
  t.same(new SvixWebhook(SECRET).verify(body, headers), JSON.parse(body))
})

t.test('each kind of verification failure is told apart', async (t) => {
  const nowMs = 1_700_000_000_000
  const now = nowMs / 1000
  const verifier = new WebhookVerifier([SECRET], { now: () => nowMs })
  const body = Buffer.from('{"a":1}')
  const sig = (ts: number, id = 'msg_1', b: Buffer | string = body) => signWebhook(SECRET, id, ts, b)
  const reason = (headers: { id?: string, timestamp?: string, signature?: string }) => {
    const result = verifier.verify({ id: headers.id, timestamp: headers.timestamp, signature: headers.signature }, body)
    return result.ok ? 'ok' : result.reason
  }
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: sig(now) }), 'ok')
  t.equal(reason({ timestamp: String(now), signature: sig(now) }), 'missing-headers')
  t.equal(reason({ id: 'msg_1', signature: sig(now) }), 'missing-headers')
  t.equal(reason({ id: 'msg_1', timestamp: String(now) }), 'missing-headers')
  t.equal(reason({ id: 'x'.repeat(257), timestamp: String(now), signature: sig(now, 'x'.repeat(257)) }), 'missing-headers')
  t.equal(reason({ id: 'msg_1', timestamp: 'soon', signature: sig(now) }), 'bad-timestamp')
  t.equal(reason({ id: 'msg_1', timestamp: String(now - 300), signature: sig(now - 300) }), 'ok', '300 s old is within tolerance')
  t.equal(reason({ id: 'msg_1', timestamp: String(now - 301), signature: sig(now - 301) }), 'stale')
  t.equal(reason({ id: 'msg_1', timestamp: String(now + 300), signature: sig(now + 300) }), 'ok', '300 s ahead is within tolerance')
  t.equal(reason({ id: 'msg_1', timestamp: String(now + 301), signature: sig(now + 301) }), 'future')
  t.equal(reason({ id: 'msg_2', timestamp: String(now), signature: sig(now) }), 'bad-signature', 'the id is signed')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: sig(now - 1) }), 'bad-signature', 'the timestamp is signed')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: sig(now, 'msg_1', '{"a":2}') }), 'bad-signature', 'the body is signed')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: signWebhook(OTHER, 'msg_1', now, body) }), 'bad-signature', 'another secret')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: sig(now).replace('v1,', 'v2,') }), 'bad-signature', 'only v1 counts')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: `v1,${'A'.repeat(44)} v1a,xyz ${sig(now)}` }), 'ok', 'any of several signatures')
  t.equal(reason({ id: 'msg_1', timestamp: String(now), signature: 'v1' }), 'bad-signature')
})

t.test('during a rotation every secret of a source verifies', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const body = Buffer.from('{}')
  const verifier = new WebhookVerifier([OTHER, SECRET])
  for (const secret of [SECRET, OTHER]) {
    t.ok(verifier.verify({ id: 'm', timestamp: String(now), signature: signWebhook(secret, 'm', now, body) }, body).ok)
  }
})

t.test('a malformed secret is refused', async (t) => {
  t.throws(() => decodeSecret('whsec_not base64!'), /whsec_ followed by base64/)
  t.throws(() => new WebhookVerifier([]), /at least one/)
  t.equal(decodeSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').length, 24, 'the whsec_ prefix is optional')
})

t.test('canonical JSON ignores key order but not values', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}')
  t.equal(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}')
  t.equal(requestFingerprint('r', { event: 'e', data: { x: 1, y: 2 } }), requestFingerprint('r', { data: { y: 2, x: 1 }, event: 'e' }))
  t.not(requestFingerprint('r', { event: 'e', data: 1 }), requestFingerprint('s', { event: 'e', data: 1 }), 'the room counts')
  t.not(requestFingerprint('r', { event: 'e', data: 1 }), requestFingerprint('r', { event: 'e', data: '1' }))
})

t.test('an idempotent request runs once and is replayed, and a different request with its key is refused', async (t) => {
  const idempotency = new Idempotency(new MemoryDedupeStore())
  let runs = 0
  const work = async () => ({ status: 202, body: { n: ++runs } })
  t.same(await idempotency.run('alpha', 'k', 'f1', work), { kind: 'fresh', answer: { status: 202, body: { n: 1 } } })
  t.same(await idempotency.run('alpha', 'k', 'f1', work), { kind: 'replay', answer: { status: 202, body: { n: 1 } } })
  t.same(await idempotency.run('alpha', 'k', 'f2', work), { kind: 'mismatch' })
  t.same(await idempotency.run('beta', 'k', 'f2', work), { kind: 'fresh', answer: { status: 202, body: { n: 2 } } }, 'keys are scoped per caller')
  t.equal(runs, 2)
})

t.test('an answer is replayed only for its time to live', async (t) => {
  let now = 1000
  const idempotency = new Idempotency(new MemoryDedupeStore({ now: () => now }), { ttlMs: 5000 })
  let runs = 0
  const work = async () => ({ status: 202, body: ++runs })
  await idempotency.run('a', 'k', 'f', work)
  now += 4999
  t.equal((await idempotency.run('a', 'k', 'f', work)).kind, 'replay')
  now += 1
  t.equal((await idempotency.run('a', 'k', 'f', work)).kind, 'fresh')
  t.equal(runs, 2)
})

t.test('a webhook payload is its JSON, else its text, else null', async (t) => {
  t.same(decodePayload(Buffer.from('{"a":[1,2]}')), { a: [1, 2] })
  t.equal(decodePayload(Buffer.from('plain text')), 'plain text')
  t.equal(decodePayload(Buffer.alloc(0)), null)
})

t.test('the OpenAPI document mounts at the base path and omits 429 without a rate limit', async (t) => {
  const doc = buildOpenApi({ basePath: '/', sources: [], bodyLimit: 1024, rateLimit: false }) as Json
  t.ok(doc.paths['/rooms/{room}/events'])
  t.notOk(doc.paths['/rooms/{room}/events'].post.responses[429])
  t.same(doc.paths['/hooks/{source}'].post.parameters[0].schema, { type: 'string' })
})
