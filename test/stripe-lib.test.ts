import t from 'tap'
import Stripe from 'stripe'
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { Member, RoomEvent } from '../lib/rooms/types.js'
import { createStripeVerifier, signedTimestamp, publishStripeEvent, stripeUserId } from '../lib/stripe/index.js'
import { WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, eventPayload, checkoutSession, sign, signRotating } from './helpers/fake-stripe.js'

const verifier = createStripeVerifier({ stripe: Stripe, secrets: [WEBHOOK_SECRET] })
const nowS = () => Math.floor(Date.now() / 1000)

function problemOf (fn: () => unknown): { code?: string, message?: string, problem?: string } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string, message?: string, problem?: string }
  }
  throw new Error('expected a throw')
}

function fakeEvent (id: string, type = 'checkout.session.completed', object: Record<string, unknown> = checkoutSession()): Stripe.Event {
  return JSON.parse(eventPayload(type, object, id)) as Stripe.Event
}

t.test('verifier', async (t) => {
  t.test('a correctly signed payload gives back the parsed event', async (t) => {
    const payload = eventPayload('checkout.session.completed', checkoutSession({ client_reference_id: 'u1' }))
    const event = verifier.verify(Buffer.from(payload), sign(payload))
    t.equal(event.type, 'checkout.session.completed')
    t.equal((event.data.object as { client_reference_id: string }).client_reference_id, 'u1')
  })

  t.test('each problem has its own short reason and code GW_STRIPE_SIGNATURE', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    const body = Buffer.from(payload)
    const cases: Array<[string, string | string[] | undefined, string]> = [
      ['missing', undefined, 'missing'],
      ['empty', '  ', 'missing'],
      ['empty array', [], 'missing'],
      ['two headers', [sign(payload), sign(payload)], 'multiple'],
      ['garbage', 'garbage', 'malformed'],
      ['no v1', `t=${nowS()},v0=abc`, 'malformed'],
      ['no timestamp', 'v1=abc', 'malformed'],
      ['bad timestamp', 't=soon,v1=abc', 'malformed'],
      ['other secret', sign(payload, 'whsec_someoneelse'), 'mismatch'],
      ['stale', sign(payload, WEBHOOK_SECRET, nowS() - 400), 'stale'],
      ['stale and wrong', sign(payload, 'whsec_someoneelse', nowS() - 400), 'stale']
    ]
    for (const [name, header, problem] of cases) {
      const err = problemOf(() => verifier.verify(body, header))
      t.equal(err.code, 'GW_STRIPE_SIGNATURE', name)
      t.equal(err.problem, problem, name)
      t.notMatch(err.message, /whsec|v1=/, `${name}: the reason names no secret or signature`)
    }
  })

  t.test('a re-serialised body no longer matches its signature', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    const reserialised = JSON.stringify(JSON.parse(payload))
    t.not(reserialised, payload)
    t.equal(problemOf(() => verifier.verify(Buffer.from(reserialised), sign(payload))).problem, 'mismatch')
  })

  t.test('every configured secret is tried, and a header with two signatures passes with either', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    const both = createStripeVerifier({ stripe: Stripe, secrets: [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET] })
    t.equal(both.verify(Buffer.from(payload), sign(payload, WEBHOOK_SECRET)).type, 'charge.succeeded')
    t.equal(both.verify(Buffer.from(payload), sign(payload, OLD_WEBHOOK_SECRET)).type, 'charge.succeeded')
    const rotating = signRotating(payload, [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET])
    t.equal(verifier.verify(Buffer.from(payload), rotating).type, 'charge.succeeded')
    const onlyOld = createStripeVerifier({ stripe: Stripe, secrets: [OLD_WEBHOOK_SECRET] })
    t.equal(onlyOld.verify(Buffer.from(payload), rotating).type, 'charge.succeeded')
  })

  t.test('tolerance and clock are options', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    const header = sign(payload, WEBHOOK_SECRET, nowS() - 100)
    t.equal(problemOf(() => createStripeVerifier({ stripe: Stripe, secrets: [WEBHOOK_SECRET], tolerance: 50 }).verify(Buffer.from(payload), header)).problem, 'stale')
    const later = createStripeVerifier({ stripe: Stripe, secrets: [WEBHOOK_SECRET], now: () => Date.now() + 3600_000 })
    t.equal(problemOf(() => later.verify(Buffer.from(payload), sign(payload))).problem, 'stale')
  })

  t.test('a timestamp more than the tolerance in the future is refused too (the SDK alone checks only age)', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    // the SDK itself accepts it: the refusal is ours
    t.equal(Stripe.webhooks.constructEvent(payload, sign(payload, WEBHOOK_SECRET, nowS() + 3600), WEBHOOK_SECRET, 300).type, 'charge.succeeded')
    const future = problemOf(() => verifier.verify(Buffer.from(payload), sign(payload, WEBHOOK_SECRET, nowS() + 3600)))
    t.match(future, { code: 'GW_STRIPE_SIGNATURE', problem: 'future', message: 'signature timestamp outside the tolerance' })
    t.equal(problemOf(() => verifier.verify(Buffer.from(payload), sign(payload, 'whsec_other', nowS() + 301 + 5))).problem, 'future', 'whatever the signature')
    t.equal(verifier.verify(Buffer.from(payload), sign(payload, WEBHOOK_SECRET, nowS() + 250)).type, 'charge.succeeded', 'within the tolerance ahead')
    const earlier = createStripeVerifier({ stripe: Stripe, secrets: [WEBHOOK_SECRET], now: () => Date.now() - 3600_000 })
    t.equal(problemOf(() => earlier.verify(Buffer.from(payload), sign(payload))).problem, 'future', 'a clock behind the sender')
  })

  t.test('a signed body that is not a Stripe event is refused with GW_STRIPE_EVENT', async (t) => {
    for (const [payload, reason] of [
      ['not json', /not JSON/],
      ['[1,2]', /id, type and data.object/],
      ['null', /id, type and data.object/],
      ['{"id":"evt_1","type":"x","data":{"object":null}}', /id, type and data.object/],
      ['{"id":"","type":"x","data":{"object":{}}}', /id, type and data.object/],
      ['{"id":"evt_1","type":"","data":{"object":{}}}', /id, type and data.object/],
      ['{"id":"evt_1","type":"x"}', /id, type and data.object/],
      ['{"id":"evt_1","object":"v2.core.event","type":"x"}', /snapshot/]
    ] as const) {
      const err = problemOf(() => verifier.verify(Buffer.from(payload), sign(payload)))
      t.equal(err.code, 'GW_STRIPE_EVENT', payload)
      t.match(err.message, reason, payload)
    }
  })

  t.test('an empty secret list is refused when building', async (t) => {
    t.throws(() => createStripeVerifier({ stripe: Stripe, secrets: [] }), { code: 'GW_INVALID_OPTIONS' })
  })

  t.test('signedTimestamp reads t= only with a v1 signature next to it', async (t) => {
    t.equal(signedTimestamp('t=12,v1=ab'), 12)
    t.equal(signedTimestamp('v1=ab,t=12,v0=cd'), 12)
    t.equal(signedTimestamp('t=12'), null)
    t.equal(signedTimestamp('t=12,v1='), null)
    t.equal(signedTimestamp('v1=ab'), null)
    t.equal(signedTimestamp('nothing,at,all'), null)
  })
})

t.test('publishing', async (t) => {
  function member (registry: RoomRegistry, got: RoomEvent[]): Member {
    return { id: registry.nextMemberId(), user: null, transport: 'test', encoder: { name: 'test', encode: (e) => e }, deliver: (_e, ev) => { got.push(ev) } }
  }

  t.test('stripeUserId prefers metadata.userId, then client_reference_id; only non-empty strings', async (t) => {
    t.equal(stripeUserId({ metadata: { userId: 'm1' }, client_reference_id: 'c1' }), 'm1')
    t.equal(stripeUserId({ metadata: { userId: '' }, client_reference_id: 'c1' }), 'c1')
    t.equal(stripeUserId({ metadata: null, client_reference_id: 'c1' }), 'c1')
    t.equal(stripeUserId({ metadata: { userId: 42 } }), null)
    t.equal(stripeUserId({ client_reference_id: null }), null)
    t.equal(stripeUserId(null), null)
    t.equal(stripeUserId('cs_1'), null)
  })

  t.test('an event goes to room stripe and the user room as stripe.<type> with data.object', async (t) => {
    const registry = new RoomRegistry()
    t.after(() => registry.close())
    const inStripe: RoomEvent[] = []
    const inUser: RoomEvent[] = []
    registry.join('stripe', member(registry, inStripe))
    registry.join('user:u7', member(registry, inUser))
    const object = checkoutSession({ metadata: { userId: 'u7' } })
    const rooms = await publishStripeEvent(registry, fakeEvent('evt_p1', 'checkout.session.completed', object))
    t.same(rooms, ['stripe', 'user:u7'])
    t.equal(inStripe[0].event, 'stripe.checkout.session.completed')
    t.same(inStripe[0].data, object)
    t.same(inUser[0].data, object)
  })

  t.test('a user id that is no legal room name is skipped with a warning; so is an illegal event type', async (t) => {
    const registry = new RoomRegistry()
    t.after(() => registry.close())
    const warnings: string[] = []
    const log = { warn: (_obj: object, msg: string) => { warnings.push(msg) } }
    t.same(await publishStripeEvent(registry, fakeEvent('evt_p2', 'charge.succeeded', { id: 'ch', metadata: { userId: 'has space' } }), log), ['stripe'])
    t.same(await publishStripeEvent(registry, fakeEvent('evt_p3', 'weird type', { id: 'ch' }), log), [])
    t.equal(warnings.length, 2)
    t.same(await publishStripeEvent(registry, fakeEvent('evt_p4', 'charge.succeeded', { id: 'ch', client_reference_id: 'x'.repeat(200) })), ['stripe'], 'no logger: skipped silently')
  })
})
