import t from 'tap'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { openWs } from './helpers/ws-client.js'
import { kafkaPeer, startMockKafka, waitUntil } from './helpers/kcat.js'

t.test('server.ts with GATEWAYS=ws,kafka: a KAFKA_BRIDGE message reaches the WebSocket member of its room', async (t) => {
  const mock = await startMockKafka(t)
  if (mock === null) return
  const peer = await kafkaPeer(t, mock)
  const { app } = await buildTestApp({
    GATEWAYS: 'ws,kafka',
    AUTH_JWT_SECRET: JWT_SECRET,
    KAFKA_BROKERS: mock.brokers.join(','),
    KAFKA_GROUP_ID: 'gateway-e2e',
    KAFKA_BRIDGE: 'user.notification=user:{userId}',
    KAFKA_FROM_BEGINNING: 'true',
    KAFKA_SESSION_TIMEOUT_MS: '3500',
    KAFKA_HEARTBEAT_MS: '300',
    KAFKA_MAX_WAIT_MS: '100',
    KAFKA_RETRY_BACKOFF_MS: '20'
  })
  t.after(() => app.close())
  t.equal((await app.inject('/ready')).statusCode, 503, 'not ready before the consumer joined')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const frames = await openWs(`ws://127.0.0.1:${port}/ws?token=${await signToken('42')}`)
  t.after(() => { frames.ws.terminate() })
  t.match(await frames.next(), { op: 'hello', user: '42' })
  t.same(await frames.request({ op: 'join', room: 'user:42' }), { op: 'joined', room: 'user:42' })

  await waitUntil(async () => (await app.inject('/ready')).statusCode === 200, 20_000, '/ready says 200')
  await peer.produce('user.notification', [{ value: JSON.stringify({ userId: '42', title: 'New Message!' }) }])
  const event = await frames.until((frame) => frame.op === 'event', 15_000)
  t.match(event, { op: 'event', room: 'user:42', event: 'user.notification', data: { userId: '42', title: 'New Message!' } })
  t.type(event.id, 'string')
})
