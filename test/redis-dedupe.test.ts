import t, { type Test } from 'tap'
import { RedisDedupeStore } from '../lib/redis/dedupe.js'
import { createRedisClient, closeClient, loadIORedis, whenReady } from '../lib/redis/client.js'
import { startRedis, until, type RedisServer } from './helpers/redis.js'

/** Two stores of one namespace on separate connections: two instances sharing Redis. */
async function stores (t: Test, namespace = 'stripe') {
  const redis = await startRedis(t)
  if (redis === null) return null
  const one = new RedisDedupeStore({ redis: redis.url, namespace, pollMs: 10, maxPollMs: 40 })
  const two = new RedisDedupeStore({ redis: redis.url, namespace, pollMs: 10, maxPollMs: 40 })
  t.after(() => Promise.all([one.close(), two.close()]))
  await Promise.all([whenReady(await one.client(), 5000), whenReady(await two.client(), 5000)])
  return { redis, one, two }
}

t.test('a key claimed on one instance is pending on the other, which waits for and then replays the answer', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  t.same(await one.claim('evt_1', 10_000), { state: 'claimed' })
  t.same(await two.claim('evt_1', 10_000), { state: 'pending' })
  const waiting = two.wait('evt_1', 5000)
  await one.complete('evt_1', '{"received":true}', 60_000)
  t.same(await waiting, { state: 'done', value: '{"received":true}' })
  t.same(await two.claim('evt_1', 10_000), { state: 'done', value: '{"received":true}' })
  t.same(await one.claim('evt_1', 10_000), { state: 'done', value: '{"received":true}' })
})

t.test('a released key wakes the waiter as released and can be claimed again', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_2', 10_000)
  const waiting = two.wait('evt_2', 5000)
  await one.release('evt_2')
  t.same(await waiting, { state: 'released' })
  t.same(await two.claim('evt_2', 10_000), { state: 'claimed' })
})

t.test('an instance cannot release a claim it does not hold', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_3', 10_000)
  await two.release('evt_3')
  t.same(await two.claim('evt_3', 10_000), { state: 'pending' }, 'still claimed by the first instance')
  await one.complete('evt_3', 'v', 60_000)
  await one.release('evt_3')
  t.same(await two.claim('evt_3', 10_000), { state: 'done', value: 'v' }, 'release after complete changes nothing')
})

t.test('a crashed holder\'s lease expires: waiters see released and the next claim runs', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_4', 300)
  t.same(await two.claim('evt_4', 300), { state: 'pending' })
  t.same(await two.wait('evt_4', 5000), { state: 'released' }, 'the lease ran out')
  t.same(await two.claim('evt_4', 10_000), { state: 'claimed' })
  await one.release('evt_4')
  t.same(await one.claim('evt_4', 10_000), { state: 'pending' }, 'the expired holder\'s late release left the new claim alone')
})

t.test('wait gives up after its timeout while the key stays pending; an unknown key is released', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_5', 10_000)
  t.same(await two.wait('evt_5', 80), { state: 'timeout' })
  t.same(await two.wait('never-claimed', 1000), { state: 'released' })
})

t.test('a completed answer expires after its ttl', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_6', 10_000)
  await one.complete('evt_6', 'v', 200)
  let claim: { state: string } = { state: 'none' }
  await until(async () => (claim = await two.claim('evt_6', 10_000)).state === 'claimed', 5000, 'the answer to expire')
  t.same(claim, { state: 'claimed' }, 'claimable again once the answer expired')
})

t.test('keys are namespaced: <prefix>:<namespace>:<key>, and namespaces do not collide', async (t) => {
  const setup = await stores(t, 'hooks')
  if (setup === null) return
  const { redis, one } = setup
  const shared = await one.client()
  const other = new RedisDedupeStore({ redis: shared, namespace: 'idempotency' })
  const custom = new RedisDedupeStore({ redis: shared, namespace: 'hooks', keyPrefix: 'app1' })
  t.after(() => Promise.all([other.close(), custom.close()]))
  await one.claim('msg_1', 10_000)
  t.same(await other.claim('msg_1', 10_000), { state: 'claimed' })
  t.same(await custom.claim('msg_1', 10_000), { state: 'claimed' })
  t.match(await redis.command(['GET', 'gw:dedupe:hooks:msg_1']), /^\$\d+\r\np:[0-9a-f]{16}$/)
  t.match(await redis.command(['GET', 'gw:dedupe:idempotency:msg_1']), /p:/)
  t.match(await redis.command(['GET', 'app1:hooks:msg_1']), /p:/)
  await other.close()
  t.equal(shared.status, 'ready', 'a store on a shared client leaves the client open')
  t.throws(() => new RedisDedupeStore({ redis: shared, namespace: 'bad space' }), { code: 'GW_INVALID_OPTIONS' })
})

t.test('while Redis is down every call rejects with GW_STORE_UNAVAILABLE, and works again after a restart', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { redis, one } = setup
  await stopAndWait(redis, one)
  await t.rejects(one.claim('evt_7', 1000), { code: 'GW_STORE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(one.complete('evt_7', 'v', 1000), { code: 'GW_STORE_UNAVAILABLE' })
  await t.rejects(one.wait('evt_7', 1000), { code: 'GW_STORE_UNAVAILABLE' })
  await redis.start()
  await whenReady(await one.client(), 10_000)
  t.same(await one.claim('evt_7', 1000), { state: 'claimed' })
  await one.close()
  await t.rejects(one.claim('evt_8', 1000), { code: 'GW_STORE_UNAVAILABLE' }, 'a closed store refuses')
})

t.test('close ends waits as timeout', async (t) => {
  const setup = await stores(t)
  if (setup === null) return
  const { one, two } = setup
  await one.claim('evt_9', 10_000)
  const waiting = two.wait('evt_9', 10_000)
  await two.close()
  t.same(await waiting, { state: 'timeout' })
})

t.test('a shared client passed in is used as is', async (t) => {
  const redis = await startRedis(t)
  if (redis === null) return
  const client = createRedisClient(await loadIORedis(), redis.url)
  t.after(() => closeClient(client))
  await whenReady(client, 5000)
  const store = new RedisDedupeStore({ redis: client, namespace: 'stripe' })
  t.equal(await store.client(), client)
  t.equal(store.redis, client)
  t.same(await store.claim('k', 1000), { state: 'claimed' })
  await store.close()
  t.equal(client.status, 'ready')
})

async function stopAndWait (redis: RedisServer, store: RedisDedupeStore) {
  await redis.stop()
  const client = await store.client()
  await until(() => client.status !== 'ready', 5000, 'the client to notice')
}
