import t from 'tap'
import { MemoryDedupeStore, type DedupeStore } from '../lib/stores/dedupe.js'
import { runOnce } from '../lib/stores/once.js'
import { GatewayCounters } from '../lib/metrics/counters.js'
import { GatewayErrors } from '../lib/errors.js'
import { WebhookPipeline, handlersFor, runWithBudget, type Delivery } from '../lib/webhooks/index.js'
import { ObservedStore } from './helpers/fake-stripe.js'

/** A delivery whose handler counts its runs and can be held open or made to fail. */
function counted (key: string, handler: (signal: AbortSignal) => unknown = () => {}, publish?: () => unknown) {
  const seen = { runs: 0, published: 0 }
  const delivery: Delivery = {
    key,
    handle: async (signal) => { seen.runs++; await handler(signal); return `value of ${key}` },
    publish: async () => { await publish?.(); seen.published++ }
  }
  return { delivery, seen }
}

function gate () {
  let open: () => void = () => {}
  let fail: (err: Error) => void = () => {}
  const promise = new Promise<void>((resolve, reject) => { open = resolve; fail = reject })
  return { promise, open, fail }
}

t.test('handlersFor: the typed handler first, then the catch-all; own keys only', async (t) => {
  const table: Record<string, string> = { 'charge.succeeded': 'typed', '*': 'all' }
  t.same(handlersFor(table, 'charge.succeeded'), ['typed', 'all'])
  t.same(handlersFor(table, 'refund.created'), ['all'])
  t.same(handlersFor(table, '*'), ['all'], 'a delivery typed "*" does not run the catch-all twice')
  t.same(handlersFor({}, 'toString'), [], 'inherited object keys are not handlers')
  t.same(handlersFor({ a: undefined }, 'a'), [])
})

t.test('runWithBudget', async (t) => {
  t.test('ok and failed carry the value or the error', async (t) => {
    t.same(await runWithBudget(async () => 42, 1000, () => new Error('late')), { kind: 'ok', value: 42 })
    const boom = new Error('boom')
    t.same(await runWithBudget(async () => { throw boom }, 1000, () => new Error('late')), { kind: 'failed', error: boom })
  })

  t.test('past the budget: timeout at once, the signal aborts with the reason, late tells how it ended', async (t) => {
    let seen: AbortSignal | undefined
    const result = await runWithBudget(async (signal) => {
      seen = signal
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
    }, 20, () => new GatewayErrors.STRIPE_TIMEOUT('x', '20'))
    t.equal(result.kind, 'timeout')
    t.equal(seen?.aborted, true)
    t.match(seen?.reason, { code: 'GW_STRIPE_TIMEOUT' })
    if (result.kind === 'timeout') t.same(await result.late, {})
  })

  t.test('a late failure is reported by late', async (t) => {
    const result = await runWithBudget(async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
      throw new Error('aborted late')
    }, 10, () => new Error('budget'))
    t.equal(result.kind, 'timeout')
    if (result.kind === 'timeout') t.match((await result.late).error, { message: 'aborted late' })
  })
})

t.test('pipeline', async (t) => {
  t.test('an id is handled once; its repeat is a duplicate that runs nothing and gets the recorded value', async (t) => {
    const pipeline = new WebhookPipeline({ provider: 'stripe', store: new MemoryDedupeStore() })
    const { delivery, seen } = counted('evt_once')
    t.same(await pipeline.deliver(delivery), { kind: 'handled', value: 'value of evt_once', recorded: true })
    t.same(await pipeline.deliver(delivery), { kind: 'duplicate', value: 'value of evt_once' })
    t.same(seen, { runs: 1, published: 1 })
  })

  t.test('the defaults: 10 s budget, 4 days memory, a lease past the budget, a wait as long as the lease', async (t) => {
    const pipeline = new WebhookPipeline({ provider: 'stripe', store: new MemoryDedupeStore() })
    t.equal(pipeline.handlerTimeoutMs, 10_000)
    t.ok(pipeline.dedupeTtlMs > 3 * 24 * 3600 * 1000)
    t.ok(pipeline.leaseMs > pipeline.handlerTimeoutMs)
    t.equal(pipeline.waitMs, pipeline.leaseMs)
  })

  t.test('a handled id is remembered for dedupeTtlMs', async (t) => {
    let now = 1_000_000
    const pipeline = new WebhookPipeline({ provider: 'stripe', store: new MemoryDedupeStore({ now: () => now }), dedupeTtlMs: 60_000 })
    const { delivery, seen } = counted('evt_ttl')
    await pipeline.deliver(delivery)
    now += 59_000
    t.equal((await pipeline.deliver(delivery)).kind, 'duplicate')
    now += 2000
    t.equal((await pipeline.deliver(delivery)).kind, 'handled')
    t.equal(seen.runs, 2)
  })

  t.test('a handler failure releases the id so the retry runs it again; nothing is published', async (t) => {
    const pipeline = new WebhookPipeline({ provider: 'stripe', store: new MemoryDedupeStore() })
    const { delivery, seen } = counted('evt_retry', () => { if (seen.runs === 1) throw new Error('first try fails') })
    t.match(await pipeline.deliver(delivery), { kind: 'failed', stage: 'handler', error: { message: 'first try fails' } })
    t.equal(seen.published, 0)
    t.same(await pipeline.deliver(delivery), { kind: 'handled', value: 'value of evt_retry', recorded: true })
    t.same(seen, { runs: 2, published: 1 })
  })

  t.test('a publish failure is a failure of stage publish, and the retry runs the handlers again', async (t) => {
    const pipeline = new WebhookPipeline({ provider: 'hooks', store: new MemoryDedupeStore() })
    let down = true
    const { delivery, seen } = counted('hook_1', () => {}, () => { if (down) throw new GatewayErrors.BUS_UNAVAILABLE('redis down') })
    t.match(await pipeline.deliver(delivery), { kind: 'failed', stage: 'publish', error: { code: 'GW_BUS_UNAVAILABLE' } })
    down = false
    t.equal((await pipeline.deliver(delivery)).kind, 'handled')
    t.same(seen, { runs: 2, published: 1 })
  })

  t.test('a concurrent delivery waits for the first and is a duplicate: the handler runs once', async (t) => {
    const store = new ObservedStore()
    const pipeline = new WebhookPipeline({ provider: 'stripe', store })
    const held = gate()
    const { delivery, seen } = counted('evt_concurrent', async () => { await held.promise })
    const first = pipeline.deliver(delivery)
    const second = pipeline.deliver(delivery)
    await store.waiting
    held.open()
    t.same(await first, { kind: 'handled', value: 'value of evt_concurrent', recorded: true })
    t.same(await second, { kind: 'duplicate', value: 'value of evt_concurrent' })
    t.same(seen, { runs: 1, published: 1 })
  })

  t.test('a concurrent delivery of a first that fails is told (in-flight released), and the next one runs', async (t) => {
    const store = new ObservedStore()
    const pipeline = new WebhookPipeline({ provider: 'stripe', store })
    const held = gate()
    const { delivery, seen } = counted('evt_concurrent_fail', async () => { if (seen.runs === 1) await held.promise })
    const first = pipeline.deliver(delivery)
    const second = pipeline.deliver(delivery)
    await store.waiting
    held.fail(new Error('first fails'))
    t.match(await first, { kind: 'failed', stage: 'handler' })
    t.same(await second, { kind: 'in-flight', result: 'released' }, 'the waiter does not run it: the provider retries')
    t.equal(seen.runs, 1)
    t.equal((await pipeline.deliver(delivery)).kind, 'handled')
    t.equal(seen.runs, 2)
  })

  t.test('a concurrent delivery that waits in vain (the holder died) is in-flight/timeout after waitMs and runs nothing', async (t) => {
    const waits: number[] = []
    const store: DedupeStore = {
      name: 'stub',
      claim: async () => ({ state: 'pending' }),
      wait: async (_key, timeoutMs) => { waits.push(timeoutMs); return { state: 'timeout' } },
      complete: async () => {},
      release: async () => {},
      close: async () => {}
    }
    const { delivery, seen } = counted('evt_wait_timeout')
    t.same(await new WebhookPipeline({ provider: 'stripe', store, leaseMs: 1234 }).deliver(delivery), { kind: 'in-flight', result: 'timeout' })
    t.same(await new WebhookPipeline({ provider: 'hooks', store, leaseMs: 1234, waitMs: 50 }).deliver(delivery), { kind: 'in-flight', result: 'timeout' })
    t.same(waits, [1234, 50], 'it waits as long as a lease lasts unless told otherwise')
    t.equal(seen.runs, 0)
  })

  t.test('past the budget the id is released at once; a late success publishes and records nothing', async (t) => {
    const pipeline = new WebhookPipeline({ provider: 'stripe', store: new MemoryDedupeStore(), handlerTimeoutMs: 20 })
    const held = gate()
    const { delivery, seen } = counted('evt_timeout', async () => { if (seen.runs === 1) await held.promise })
    const outcome = await pipeline.deliver(delivery)
    t.match(outcome, { kind: 'timeout', budgetMs: 20 })
    t.equal((await pipeline.deliver(delivery)).kind, 'handled', 'the retry runs while the first still hangs')
    held.open()
    if (outcome.kind === 'timeout') t.same(await outcome.late, {})
    t.same(seen, { runs: 2, published: 1 }, 'the late success did not publish')
    t.equal((await pipeline.deliver(delivery)).kind, 'duplicate')
  })

  t.test('the signal given to the handler aborts with the gateway\'s timeout reason', async (t) => {
    let reason: unknown
    const pipeline = new WebhookPipeline({
      provider: 'sms', store: new MemoryDedupeStore(), handlerTimeoutMs: 10,
      timeoutReason: (key, budgetMs) => new GatewayErrors.SMS_TIMEOUT(key, String(budgetMs))
    })
    const outcome = await pipeline.deliver({
      key: 'SM1:received',
      handle: async (signal) => { await new Promise((resolve) => signal.addEventListener('abort', resolve)); reason = signal.reason }
    })
    if (outcome.kind === 'timeout') await outcome.late
    t.match(reason, { code: 'GW_SMS_TIMEOUT', message: /SM1:received ran past its 10 ms budget/ })
    const plain = new WebhookPipeline({ provider: 'sms', store: new MemoryDedupeStore(), handlerTimeoutMs: 10 })
    const late = await plain.deliver({ key: 'k', handle: async (signal) => { await new Promise((resolve) => signal.addEventListener('abort', resolve)); reason = signal.reason } })
    if (late.kind === 'timeout') await late.late
    t.match(reason, { message: 'the handlers of k ran past their 10 ms budget' })
  })

  t.test('store failures: before running is store-error; after success is handled but not recorded', async (t) => {
    const store = new ObservedStore()
    const pipeline = new WebhookPipeline({ provider: 'stripe', store })
    const { delivery, seen } = counted('evt_s1')
    store.fail.claim = true
    t.match(await pipeline.deliver(delivery), { kind: 'store-error', error: { message: 'store down' } })
    t.equal(seen.runs, 0)
    store.fail = { complete: true }
    t.match(await pipeline.deliver(delivery), { kind: 'handled', recorded: false, storeError: { message: 'store down' } })
    t.equal(seen.runs, 1)
  })

  t.test('a failing release still answers failed, and a failing wait is a store error', async (t) => {
    const store = new ObservedStore()
    const pipeline = new WebhookPipeline({ provider: 'stripe', store })
    store.fail.release = true
    t.match(await pipeline.deliver({ key: 'evt_r1', handle: () => { throw new Error('handler') } }), { kind: 'failed', error: { message: 'handler' } })
    const other = new ObservedStore()
    await other.claim('evt_w1', 10_000)
    other.fail.wait = true
    t.match(await new WebhookPipeline({ provider: 'stripe', store: other }).deliver({ key: 'evt_w1', handle: () => {} }), { kind: 'store-error' })
  })

  t.test('process: a 4xx verification error is rejected, a 5xx one unavailable; every outcome is counted once', async (t) => {
    const counters = new GatewayCounters()
    const store = new ObservedStore()
    const pipeline = new WebhookPipeline({ provider: 'sslcommerz', store, counters })
    const deliveryOf = (id: string) => ({ key: id, handle: () => { if (id === 'bad') throw new Error('handler') } })
    t.match(await pipeline.process(() => { throw new GatewayErrors.SSLCOMMERZ_SIGNATURE('bad hash') }, deliveryOf), { kind: 'rejected', error: { statusCode: 400 } })
    t.match(await pipeline.process(() => { throw new GatewayErrors.SSLCOMMERZ_UNAVAILABLE('down') }, deliveryOf), { kind: 'unavailable', error: { statusCode: 503 } })
    t.match(await pipeline.process(() => { throw new Error('a bug') }, deliveryOf), { kind: 'unavailable' }, 'an uncoded error is not a refusal')
    t.match(await pipeline.process(async () => 'val_1', deliveryOf), { kind: 'handled', event: 'val_1' })
    t.match(await pipeline.process(() => 'val_1', deliveryOf), { kind: 'duplicate', event: 'val_1' })
    t.match(await pipeline.process(() => 'bad', deliveryOf), { kind: 'failed', event: 'bad' })
    store.fail.claim = true
    t.match(await pipeline.process(() => 'val_2', deliveryOf), { kind: 'store-error', event: 'val_2' })
    t.same(counters.webhooks.sslcommerz, { handled: 1, duplicate: 1, rejected: 1, failed: 4 })
    t.same(counters.webhooks.stripe, { handled: 0, duplicate: 0, rejected: 0, failed: 0 }, 'only its own provider')
  })
})

t.test('runOnce (the one exactly-once step, shared with Idempotency-Key answers)', async (t) => {
  const options = { leaseMs: 10_000, ttlMs: 10_000, waitMs: 10_000 }

  t.test('a repeat waiting on a first attempt that fails runs the work itself when it may reclaim', async (t) => {
    const store = new MemoryDedupeStore()
    const held = gate()
    const first = runOnce(store, 'k', options, async () => { await held.promise; return 'never' })
    const second = runOnce(store, 'k', { ...options, reclaims: 1 }, async () => 'second')
    held.fail(new Error('first attempt failed'))
    t.match(await first, { kind: 'failed', error: { message: 'first attempt failed' } })
    t.same(await second, { kind: 'fresh', value: 'second', recorded: true })
    t.same(await runOnce(store, 'k', { leaseMs: 1, ttlMs: 1000, waitMs: 1 }, async () => 'third'), { kind: 'done', value: 'second' })
  })

  t.test('without reclaims the waiter reports busy/released', async (t) => {
    const store = new MemoryDedupeStore()
    const held = gate()
    const first = runOnce(store, 'k', options, async () => { await held.promise; return 'never' })
    const second = runOnce(store, 'k', options, async () => 'second')
    held.fail(new Error('first attempt failed'))
    await first
    t.same(await second, { kind: 'busy', result: 'released' })
  })

  t.test('a repeat gives up after its wait while the first is still running', async (t) => {
    const store = new MemoryDedupeStore()
    const held = gate()
    const first = runOnce(store, 'k', options, async () => { await held.promise; return 'first' })
    t.same(await runOnce(store, 'k', { ...options, waitMs: 20, reclaims: 3 }, async () => 'second'), { kind: 'busy', result: 'timeout' })
    held.open()
    t.same(await first, { kind: 'fresh', value: 'first', recorded: true })
  })

  t.test('a store that keeps releasing the key ends in busy, not a loop', async (t) => {
    const store = new MemoryDedupeStore()
    store.claim = async () => ({ state: 'pending' })
    store.wait = async () => ({ state: 'released' })
    t.same(await runOnce(store, 'k', { leaseMs: 1, ttlMs: 1, waitMs: 1, reclaims: 4 }, async () => 'never'), { kind: 'busy', result: 'released' })
  })
})

t.test('routes/webhooks.ts: refusals sent in Fastify\'s shape, failures thrown with their codes, odd errors kept', async (t) => {
  const { logOutcome, sendError, settle } = await import('../routes/webhooks.js')
  const lines: Array<{ level: string, obj: Record<string, unknown>, msg: string }> = []
  const log = {
    info: (obj: Record<string, unknown>, msg: string) => { lines.push({ level: 'info', obj, msg }) },
    warn: (obj: Record<string, unknown>, msg: string) => { lines.push({ level: 'warn', obj, msg }) },
    error: (obj: Record<string, unknown>, msg: string) => { lines.push({ level: 'error', obj, msg }) }
  } as never
  const route = {
    label: 'test delivery',
    refused: 'test refused',
    about: (event: string) => ({ event }),
    errors: {
      handler: () => new GatewayErrors.HOOK_HANDLER('h'),
      timeout: () => new GatewayErrors.HOOK_TIMEOUT('h', '1'),
      inFlight: () => new GatewayErrors.HOOK_IN_PROGRESS('h'),
      store: () => new GatewayErrors.STORE_UNAVAILABLE('s')
    }
  }
  t.throws(() => logOutcome(log, { kind: 'rejected', error: Object.assign(new Error('no code'), { statusCode: 400 }) }, route), { message: 'no code' },
    'a refusal without a code is a bug: it is rethrown as it is')
  t.match(logOutcome(log, { kind: 'unavailable', error: 'a string' }, route), { message: 'a string' }, 'a thrown non-Error becomes an Error')
  const refusal = Object.assign(new GatewayErrors.HOOK_UNVERIFIED('bad'), { details: { source: 'github' } })
  t.equal(logOutcome(log, { kind: 'rejected', error: refusal }, route), null)
  t.match(lines.at(-1), { level: 'warn', obj: { source: 'github', code: 'GW_HOOK_UNVERIFIED', reason: 'webhook verification failed: bad' }, msg: 'test refused' })
  const sent: Array<{ status: number, body: unknown }> = []
  const reply = { code (status: number) { return { send: (body: unknown) => { sent.push({ status, body }); return reply } } } } as never
  sendError(reply, Object.assign(new Error('teapot'), { code: 'GW_X', statusCode: 418 }))
  sendError(reply, Object.assign(new Error('odd'), { code: 'GW_Y', statusCode: 499 }))
  sendError(reply, Object.assign(new Error('none'), { code: 'GW_Z' }))
  t.same(sent, [
    { status: 418, body: { statusCode: 418, code: 'GW_X', error: "I'm a Teapot", message: 'teapot' } },
    { status: 499, body: { statusCode: 499, code: 'GW_Y', error: 'Error', message: 'odd' } },
    { status: 500, body: { statusCode: 500, code: 'GW_Z', error: 'Internal Server Error', message: 'none' } }
  ])
  t.same(settle({ log } as never, reply, { kind: 'duplicate', value: 'v', event: 'e' }, route), { kind: 'answer', duplicate: true, value: 'v' })
  t.throws(() => settle({ log } as never, reply, { kind: 'in-flight', result: 'timeout', event: 'e' }, route), { code: 'GW_HOOK_IN_PROGRESS' })
})
