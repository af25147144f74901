import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { openWs, type Frames } from './helpers/ws-client.js'


async function serve (t: Test, env: Record<string, string>) {
  const built = await buildTestApp(env)
  t.after(() => built.app.close())
  await built.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = built.app.server.address() as { port: number }
  return { ...built, url: `ws://127.0.0.1:${port}/ws` }
}

async function client (t: Test, url: string): Promise<Frames> {
  const frames = await openWs(url)
  t.after(() => { frames.ws.terminate() })
  return frames
}

function publish (app: FastifyInstance, room: string, event: string, data: unknown): string {
  return (app.rooms.publish(room, event, data) as { id: string }).id
}

t.test('server.ts with GATEWAYS=ws and AUTH_JWT_SECRET: a token reaches its user room and never appears in the logs', async (t) => {
  const { app, logs, url } = await serve(t, { GATEWAYS: 'ws', AUTH_JWT_SECRET: JWT_SECRET })
  const token = await signToken('42')
  const frames = await client(t, `${url}?token=${token}`)
  t.match(await frames.next(), { op: 'hello', user: '42' })
  t.same(await frames.request({ op: 'join', room: 'user:42', ref: 1 }), { op: 'joined', room: 'user:42', ref: 1 })
  t.match(await frames.request({ op: 'join', room: 'user:7' }), { op: 'error', code: 'FORBIDDEN' })
  const id = publish(app, 'user:42', 'notification', { title: 'New Message!' })
  t.same(await frames.next(), { op: 'event', room: 'user:42', event: 'notification', data: { title: 'New Message!' }, id })

  const badToken = `${token.slice(0, -4)}AAAA`
  const refused = await openWs(`${url}?token=${badToken}`).then(() => null, (err) => err)
  t.equal(refused?.statusCode, 401)
  const late = await client(t, url)
  await late.next()
  t.match(await late.request({ op: 'auth', token: badToken }), { op: 'error', code: 'UNAUTHENTICATED' })
  t.equal((await late.waitClose()).code, 1008)

  const text = logs.text()
  t.match(text, /\/ws\?token=\[redacted\]/, 'the upgrade requests were logged, with the token redacted')
  t.notOk(text.includes(token), 'the good token is not in the logs')
  t.notOk(text.includes(badToken), 'the bad token is not in the logs')
  t.notOk(text.includes(token.split('.')[2]), 'not even its signature')
})

t.test('server.ts maps PUBLIC_ROOMS, CLIENT_PUBLISH_ROOMS and the WS_* limits onto the gateway', async (t) => {
  const { url } = await serve(t, {
    GATEWAYS: 'ws',
    PUBLIC_ROOMS: 'lobby:*',
    CLIENT_PUBLISH_ROOMS: 'lobby:chat',
    WS_MAX_PAYLOAD: '512',
    WS_MAX_ROOMS: '2',
    WS_MAX_CONN_PER_IP: '2',
    WS_RATE_BURST: '20'
  })
  const frames = await client(t, url)
  t.match(await frames.next(), { op: 'hello', user: null })
  t.match(await frames.request({ op: 'join', room: 'public:news' }), { op: 'error', code: 'FORBIDDEN' }, 'public:* is no longer public')
  t.match(await frames.request({ op: 'join', room: 'lobby:chat' }), { op: 'joined' })
  t.match(await frames.request({ op: 'publish', room: 'lobby:chat', event: 'msg', data: 'hi' }), { op: 'event', data: 'hi' })
  t.match(await frames.next(), { op: 'ack' })
  t.match(await frames.request({ op: 'publish', room: 'lobby:other', event: 'msg', data: 'hi' }), { op: 'error', code: 'FORBIDDEN' })
  await frames.request({ op: 'join', room: 'lobby:2' })
  t.match(await frames.request({ op: 'join', room: 'lobby:3' }), { op: 'error', code: 'FORBIDDEN', message: /at most 2/ }, 'WS_MAX_ROOMS')
  await client(t, url)
  const third = await openWs(url).then(() => null, (err) => err)
  t.equal(third?.statusCode, 429, 'WS_MAX_CONN_PER_IP')
  frames.send({ op: 'ping', ref: 'x'.repeat(600) })
  t.equal((await frames.waitClose()).code, 1009, 'WS_MAX_PAYLOAD')
})

t.test('server.ts without AUTH_JWT_SECRET: everyone is anonymous and a token is ignored', async (t) => {
  const { url } = await serve(t, { GATEWAYS: 'ws' })
  const frames = await client(t, `${url}?token=${await signToken('42')}`)
  t.match(await frames.next(), { op: 'hello', user: null })
  t.match(await frames.request({ op: 'join', room: 'user:42' }), { op: 'error', code: 'FORBIDDEN' })
})
