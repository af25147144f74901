import t from 'tap'
import { MemoryDedupeStore } from '../lib/stores/dedupe.js'

t.test('a key is claimed once, then pending, then done with its value', async (t) => {
  const store = new MemoryDedupeStore()
  t.same(await store.claim('evt_1', 1000), { state: 'claimed' })
  t.same(await store.claim('evt_1', 1000), { state: 'pending' })
  await store.complete('evt_1', 'ok', 60_000)
  t.same(await store.claim('evt_1', 1000), { state: 'done', value: 'ok' })
})

t.test('a released key can be claimed again, so a failed handler runs again', async (t) => {
  const store = new MemoryDedupeStore()
  await store.claim('k', 1000)
  await store.release('k')
  t.same(await store.claim('k', 1000), { state: 'claimed' })
  await store.complete('k', 'v', 1000)
  await store.release('k')
  t.same(await store.claim('k', 1000), { state: 'done', value: 'v' }, 'release does not undo a completion')
})

t.test('waiters learn the outcome of a pending key', async (t) => {
  const store = new MemoryDedupeStore()
  await store.claim('a', 10_000)
  const waiting = store.wait('a', 10_000)
  await store.complete('a', 'answer', 1000)
  t.same(await waiting, { state: 'done', value: 'answer' })
  await store.claim('b', 10_000)
  const waitingB = store.wait('b', 10_000)
  await store.release('b')
  t.same(await waitingB, { state: 'released' })
  await store.claim('c', 10_000)
  t.same(await store.wait('c', 20), { state: 'timeout' })
  t.same(await store.wait('unknown', 20), { state: 'released' })
  t.same(await store.wait('a', 20), { state: 'done', value: 'answer' })
})

t.test('leases and completions expire', async (t) => {
  let now = 0
  const store = new MemoryDedupeStore({ now: () => now })
  await store.claim('lease', 100)
  now = 150
  t.same(await store.claim('lease', 100), { state: 'claimed' }, 'a crashed holder does not block forever')
  await store.complete('lease', 'v', 1000)
  now = 1200
  t.same(await store.claim('lease', 100), { state: 'claimed' })
})

t.test('the store is bounded: the oldest keys go first', async (t) => {
  const store = new MemoryDedupeStore({ maxKeys: 3 })
  for (const key of ['a', 'b', 'c', 'd']) {
    await store.claim(key, 1000)
    await store.complete(key, key, 60_000)
  }
  t.equal(store.size, 3)
  t.same(await store.claim('a', 1000), { state: 'claimed' }, 'a was dropped')
  t.same(await store.claim('d', 1000), { state: 'done', value: 'd' })
  const pending = store.wait('a', 10_000)
  await store.close()
  t.same(await pending, { state: 'timeout' }, 'close wakes waiters')
})

t.test('the store is bounded in bytes too: big values push the oldest keys out, waiters of a dropped claim are told', async (t) => {
  const store = new MemoryDedupeStore({ maxBytes: 4096 })
  await store.claim('first', 10_000)
  const waiting = store.wait('first', 10_000)
  for (let i = 0; i < 8; i++) {
    await store.claim(`k${i}`, 1000)
    await store.complete(`k${i}`, 'x'.repeat(500), 60_000)
  }
  t.ok(store.bytes <= 4096, `${store.bytes} bytes kept`)
  t.ok(store.size < 9)
  t.same(await waiting, { state: 'released' }, 'the oldest claim was dropped and its waiter woken')
  t.same(await store.claim('k7', 1000), { state: 'done', value: 'x'.repeat(500) }, 'the newest stays')
  t.same(await store.claim('k0', 1000), { state: 'claimed' }, 'an old one went')
  await store.close()
  t.equal(store.bytes, 0)
})
