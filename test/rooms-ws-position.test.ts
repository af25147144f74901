import t from 'tap'
import { buildTestApp } from './helpers/app.js'
import { openWs, type Frames } from './helpers/ws-client.js'
import { startRedis } from './helpers/redis.js'

// `{"op":"join","position":true}`: `joined` carries the room's position, an id a later join gives as `since` to
// resume exactly even when no event of the room arrived in between (docs/protocol.md, "position on join").

async function request (frames: Frames, frame: Record<string, unknown>): Promise<Record<string, unknown>> {
  const ref = `r${Math.random().toString(36).slice(2, 8)}`
  frames.send({ ...frame, ref })
  const { ref: _ref, ...answer } = await frames.until((f) => f.ref === ref)
  return answer
}

for (const redis of [false, true]) {
  t.test(`joined carries the room's position when asked, and a join from it resumes exactly (${redis ? 'Redis' : 'in memory'})`, async (t) => {
    const server = redis ? await startRedis(t) : null
    if (redis && server === null) return
    const { app } = await buildTestApp({
      GATEWAYS: 'ws',
      LOG_LEVEL: 'warn',
      CLIENT_PUBLISH_ROOMS: 'public:*',
      ...(server === null ? {} : { REDIS_URL: server.url })
    })
    t.after(async () => { await app.close() })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const url = `${address.replace('http', 'ws')}/ws`
    const first = await openWs(url)
    t.after(() => { first.ws.terminate() })
    await first.until((f) => f.op === 'hello')

    const joined = await request(first, { op: 'join', room: 'public:quiet', position: true })
    t.match(joined, { op: 'joined', room: 'public:quiet', position: /^[a-z0-9]+-0$/ }, 'a room without events: offset 0 of its epoch')
    t.same(await request(first, { op: 'join', room: 'public:plain' }), { op: 'joined', room: 'public:plain' }, 'not asked: the frame is as before')
    t.match(await request(first, { op: 'join', room: 'public:quiet', position: true }), { op: 'joined', position: joined.position }, 'joined again: the same position')
    first.ws.terminate()

    // the client was away; the room got events; nothing had reached the client before
    const publisher = await openWs(url)
    t.after(() => { publisher.ws.terminate() })
    await publisher.until((f) => f.op === 'hello')
    const acks = [await request(publisher, { op: 'publish', room: 'public:quiet', event: 'e', data: 1 }), await request(publisher, { op: 'publish', room: 'public:quiet', event: 'e', data: 2 })]

    const back = await openWs(url)
    t.after(() => { back.ws.terminate() })
    await back.until((f) => f.op === 'hello')
    const resumed = await request(back, { op: 'join', room: 'public:quiet', since: joined.position, position: true })
    t.match(resumed, { op: 'joined', room: 'public:quiet', recovered: true, position: acks[1].id })
    const replay = [await back.until((f) => f.op === 'event'), await back.until((f) => f.op === 'event')]
    t.same(replay.map((f) => [f.id, f.data]), [[acks[0].id, 1], [acks[1].id, 2]], 'exactly what was missed')
  })
}
