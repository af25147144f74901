import t from 'tap'
import type Stripe from 'stripe'
import { MemoryDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { Member, RoomEvent } from '../lib/rooms/types.js'
import {
  createStripeVerifier, signedTimestamp, dispatchWithBudget, handlersFor, StripeEventProcessor, publishStripeEvent,
  stripeUserId, type StripeEventHandlers
} from '../lib/stripe/index.js'
import { WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, ObservedStore, eventPayload, checkoutSession, sign, signRotating } from './helpers/fake-stripe.js'

const verifier = createStripeVerifier({ secrets: [WEBHOOK_SECRET] })
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
    const both = createStripeVerifier({ secrets: [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET] })
    t.equal(both.verify(Buffer.from(payload), sign(payload, WEBHOOK_SECRET)).type, 'charge.succeeded')
    t.equal(both.verify(Buffer.from(payload), sign(payload, OLD_WEBHOOK_SECRET)).type, 'charge.succeeded')
    const rotating = signRotating(payload, [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET])
    t.equal(verifier.verify(Buffer.from(payload), rotating).type, 'charge.succeeded')
    const onlyOld = createStripeVerifier({ secrets: [OLD_WEBHOOK_SECRET] })
    t.equal(onlyOld.verify(Buffer.from(payload), rotating).type, 'charge.succeeded')
  })

  t.test('tolerance and clock are options; a future timestamp passes (Stripe checks age only)', async (t) => {
    const payload = eventPayload('charge.succeeded', { id: 'ch_1', object: 'charge' })
    const header = sign(payload, WEBHOOK_SECRET, nowS() - 100)
    t.equal(problemOf(() => createStripeVerifier({ secrets: [WEBHOOK_SECRET], tolerance: 50 }).verify(Buffer.from(payload), header)).problem, 'stale')
    const later = createStripeVerifier({ secrets: [WEBHOOK_SECRET], now: () => Date.now() + 3600_000 })
    t.equal(problemOf(() => later.verify(Buffer.from(payload), sign(payload))).problem, 'stale')
    t.equal(verifier.verify(Buffer.from(payload), sign(payload, WEBHOOK_SECRET, nowS() + 3600)).type, 'charge.succeeded')
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
    t.throws(() => createStripeVerifier({ secrets: [] }), { code: 'GW_INVALID_OPTIONS' })
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

t.test('dispatch', async (t) => {
  t.test('the typed handler runs first, then the catch-all; other types run only the catch-all', async (t) => {
    const calls: string[] = []
    const handlers: StripeEventHandlers<null> = {
      'checkout.session.completed': async (event) => { calls.push(`typed:${event.data.object.id}`) },
      '*': async (event) => { calls.push(`all:${event.type}`) }
    }
    const event = fakeEvent('evt_a', 'checkout.session.completed', checkoutSession({ id: 'cs_1' }))
    t.same(await dispatchWithBudget(handlers, event, () => null, 1000), { kind: 'ok' })
    t.same(calls, ['typed:cs_1', 'all:checkout.session.completed'])
    t.equal(handlersFor(handlers, 'charge.succeeded').length, 1)
    t.equal(handlersFor(handlers, '*').length, 1, 'an event typed "*" does not run the catch-all twice')
    t.equal(handlersFor({}, 'toString').length, 0, 'inherited object keys are not handlers')
  })

  t.test('no handler is a success', async (t) => {
    t.same(await dispatchWithBudget({}, fakeEvent('evt_b'), () => null, 1000), { kind: 'ok' })
  })

  t.test('a throwing handler is a failure with its error; later handlers do not run', async (t) => {
    let after = false
    const boom = new Error('boom')
    const result = await dispatchWithBudget<null>({
      'checkout.session.completed': () => { throw boom },
      '*': () => { after = true }
    }, fakeEvent('evt_c'), () => null, 1000)
    t.same(result, { kind: 'failed', error: boom })
    t.equal(after, false)
  })

  t.test('past the budget the result is timeout, the signal aborts, and late tells how it ended', async (t) => {
    let signal: AbortSignal | undefined
    let later = false
    const result = await dispatchWithBudget<AbortSignal>({
      'checkout.session.completed': async (_event, ctx) => {
        await new Promise((resolve) => ctx.addEventListener('abort', resolve))
      },
      '*': () => { later = true }
    }, fakeEvent('evt_d'), (s) => { signal = s; return s }, 20)
    t.equal(result.kind, 'timeout')
    t.equal(signal?.aborted, true)
    t.match(signal?.reason, { code: 'GW_STRIPE_TIMEOUT' })
    if (result.kind !== 'timeout') return
    t.same(await result.late, {})
    t.equal(later, false, 'handlers after an abort do not start')
  })

  t.test('a handler that fails after its budget reports the late error', async (t) => {
    const result = await dispatchWithBudget<AbortSignal>({
      '*': async (_event, signal) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
        throw new Error('aborted late')
      }
    }, fakeEvent('evt_d2'), (s) => s, 10)
    t.equal(result.kind, 'timeout')
    if (result.kind === 'timeout') t.match((await result.late).error, { message: 'aborted late' })
  })

  t.test('a handler that succeeds after its budget reports a late success', async (t) => {
    let finish: () => void = () => {}
    const result = await dispatchWithBudget<null>({
      '*': () => new Promise<void>((resolve) => { finish = resolve })
    }, fakeEvent('evt_e'), () => null, 10)
    t.equal(result.kind, 'timeout')
    finish()
    if (result.kind === 'timeout') t.same(await result.late, {})
  })
})

t.test('processor', async (t) => {
  t.test('an event id is handled once; its repeat is a duplicate that runs nothing', async (t) => {
    const store = new MemoryDedupeStore()
    let runs = 0
    const processor = new StripeEventProcessor<null>({ store, handlers: { '*': () => { runs++ } } })
    const event = fakeEvent('evt_once')
    t.same(await processor.process(event, () => null), { kind: 'handled', recorded: true })
    t.same(await processor.process(event, () => null), { kind: 'duplicate' })
    t.equal(runs, 1)
  })

  t.test('the defaults: 10 s budget, 4 days memory (Stripe retries for 3), lease past the budget', async (t) => {
    const processor = new StripeEventProcessor<null>({ store: new MemoryDedupeStore(), handlers: {} })
    t.equal(processor.handlerTimeoutMs, 10_000)
    t.ok(processor.dedupeTtlMs > 3 * 24 * 3600 * 1000)
    t.ok(processor.leaseMs > processor.handlerTimeoutMs)
  })

  t.test('a handled id is remembered for dedupeTtlMs', async (t) => {
    let now = 1_000_000
    const store = new MemoryDedupeStore({ now: () => now })
    let runs = 0
    const processor = new StripeEventProcessor<null>({ store, handlers: { '*': () => { runs++ } }, dedupeTtlMs: 60_000 })
    const event = fakeEvent('evt_ttl')
    await processor.process(event, () => null)
    now += 59_000
    t.same(await processor.process(event, () => null), { kind: 'duplicate' })
    now += 2000
    t.same(await processor.process(event, () => null), { kind: 'handled', recorded: true })
    t.equal(runs, 2)
  })

  t.test('a failure releases the id so the retry runs the handlers again', async (t) => {
    let runs = 0
    const processor = new StripeEventProcessor<null>({
      store: new MemoryDedupeStore(),
      handlers: { '*': () => { if (++runs === 1) throw new Error('first try fails') } }
    })
    const event = fakeEvent('evt_retry')
    t.match(await processor.process(event, () => null), { kind: 'failed', error: { message: 'first try fails' } })
    t.same(await processor.process(event, () => null), { kind: 'handled', recorded: true })
    t.equal(runs, 2)
  })

  t.test('a concurrent delivery waits for the first and is a duplicate: the handler runs once', async (t) => {
    const store = new ObservedStore()
    let runs = 0
    let open: () => void = () => {}
    const gate = new Promise<void>((resolve) => { open = resolve })
    const processor = new StripeEventProcessor<null>({ store, handlers: { '*': async () => { runs++; await gate } } })
    const event = fakeEvent('evt_concurrent')
    const first = processor.process(event, () => null)
    const second = processor.process(event, () => null)
    await store.waiting
    open()
    t.same(await first, { kind: 'handled', recorded: true })
    t.same(await second, { kind: 'duplicate' })
    t.equal(runs, 1)
  })

  t.test('a concurrent delivery of a first that fails is in-flight/released (500), and the next one runs', async (t) => {
    const store = new ObservedStore()
    let runs = 0
    let fail: (err: Error) => void = () => {}
    const processor = new StripeEventProcessor<null>({
      store,
      handlers: { '*': async () => { if (++runs === 1) await new Promise<void>((_resolve, reject) => { fail = reject }) } }
    })
    const event = fakeEvent('evt_concurrent_fail')
    const first = processor.process(event, () => null)
    const second = processor.process(event, () => null)
    await store.waiting
    fail(new Error('first fails'))
    t.match(await first, { kind: 'failed' })
    t.same(await second, { kind: 'in-flight', result: 'released' })
    t.same(await processor.process(event, () => null), { kind: 'handled', recorded: true })
    t.equal(runs, 2)
  })

  t.test('a concurrent delivery that waits in vain (the holder died) answers in-flight/timeout and runs nothing', async (t) => {
    const waits: number[] = []
    const store: DedupeStore = {
      name: 'stub',
      claim: async () => ({ state: 'pending' }),
      wait: async (_key, timeoutMs) => { waits.push(timeoutMs); return { state: 'timeout' } },
      complete: async () => {},
      release: async () => {},
      close: async () => {}
    }
    let runs = 0
    const processor = new StripeEventProcessor<null>({ store, leaseMs: 1234, handlers: { '*': () => { runs++ } } })
    t.same(await processor.process(fakeEvent('evt_wait_timeout'), () => null), { kind: 'in-flight', result: 'timeout' })
    t.same(waits, [1234], 'it waits as long as a lease lasts')
    t.equal(runs, 0)
  })

  t.test('past the budget the id is released at once, even before the handler ends', async (t) => {
    let runs = 0
    let finish: () => void = () => {}
    const processor = new StripeEventProcessor<null>({
      store: new MemoryDedupeStore(),
      handlerTimeoutMs: 20,
      handlers: { '*': () => (++runs === 1 ? new Promise<void>((resolve) => { finish = resolve }) : undefined) }
    })
    const event = fakeEvent('evt_timeout')
    const outcome = await processor.process(event, () => null)
    t.equal(outcome.kind, 'timeout')
    t.same(await processor.process(event, () => null), { kind: 'handled', recorded: true })
    finish()
    if (outcome.kind === 'timeout') t.same(await outcome.late, {})
    t.same(await processor.process(event, () => null), { kind: 'duplicate' }, 'the late success records nothing over the retry')
  })

  t.test('store failures: before running is store-error; after success is handled but not recorded', async (t) => {
    const store = new ObservedStore()
    let runs = 0
    const processor = new StripeEventProcessor<null>({ store, handlers: { '*': () => { runs++ } } })
    store.fail.claim = true
    t.match(await processor.process(fakeEvent('evt_s1'), () => null), { kind: 'store-error', error: { message: 'store down' } })
    t.equal(runs, 0)
    store.fail = { complete: true }
    t.match(await processor.process(fakeEvent('evt_s2'), () => null), { kind: 'handled', recorded: false, storeError: { message: 'store down' } })
    t.equal(runs, 1)
  })

  t.test('a failing release still answers failed, and a failing wait is a store error', async (t) => {
    const store = new ObservedStore()
    const processor = new StripeEventProcessor<null>({ store, handlers: { '*': () => { throw new Error('handler') } } })
    store.fail.release = true
    t.match(await processor.process(fakeEvent('evt_r1'), () => null), { kind: 'failed', error: { message: 'handler' } })
    const other: DedupeStore = new ObservedStore()
    await other.claim('evt_w1', 10_000)
    ;(other as ObservedStore).fail.wait = true
    const waiting = new StripeEventProcessor<null>({ store: other, handlers: {} })
    t.match(await waiting.process(fakeEvent('evt_w1'), () => null), { kind: 'store-error' })
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
