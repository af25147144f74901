import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { wsGateway, type WsGatewayOptions } from '../plugins/ws.js'
import { rtcSignalGateway } from '../plugins/rtc-signal.js'
import { AddressRates } from '../lib/ws/rates.js'
import { Frames, waitFor } from './helpers/ws-client.js'
import { buildTestApp } from './helpers/app.js'

/**
 * Inbound byte budgets of ws and rtc clients (docs/security.md, "Memory budget"): per connection and per client
 * address, every frame's bytes count; past them a frame is refused with RATE_LIMITED (ref echoed), and sustained
 * abuse closes with 1008. A publish of 60 KB is within a default connection's burst but not 50 times a second.
 */

async function build (t: Test, options: WsGatewayOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(wsGateway, { closeTimeoutMs: 200, clientPublishRooms: ['public:*'], ...options })
  await app.register(rtcSignalGateway, { closeTimeoutMs: 200, ...options, iceServersPath: false })
  await app.ready()
  return app
}

async function connect (t: Test, app: FastifyInstance, address: string, path = '/ws'): Promise<Frames> {
  let frames: Frames | undefined
  const ws = await app.injectWS(path, { socket: { remoteAddress: address } } as never, { onInit: (socket) => { frames = new Frames(socket) } })
  t.after(() => { ws.terminate() })
  await (frames as Frames).next()
  return frames as Frames
}

/** An answer frame: ack or error. */
interface Answer { op?: string, code?: string, message?: string, ref?: unknown }

/** `count` publishes of about `bytes` bytes each, sent at once; the answers (ack or error) by ref. */
async function burst (frames: Frames, count: number, bytes: number, tag: string): Promise<Answer[]> {
  const pad = 'x'.repeat(bytes - 80)
  for (let i = 0; i < count; i++) frames.send({ op: 'publish', room: 'public:r', event: 'e', ref: `${tag}${i}`, data: pad })
  return await answersTo(frames, count, tag)
}

/** The answers to refs `<tag>0`..`<tag><count-1>`, in ref order (a refusal is sent before a publish is acked). */
async function answersTo (frames: Frames, count: number, tag: string): Promise<Answer[]> {
  const refs = Array.from({ length: count }, (_, i) => `${tag}${i}`)
  await waitFor(() => refs.every((ref) => frames.all.some((f) => f.ref === ref)), 10_000, `answers to ${tag}*`)
  return refs.map((ref) => frames.all.find((f) => f.ref === ref) as Answer)
}

t.test('a connection past its byte budget gets RATE_LIMITED for the frames over it', async (t) => {
  // 4 frames of 1000 bytes fit the 4096-byte burst; refilling the 4 more takes about 4 s at 1024 bytes/s
  const app = await build(t, { maxPayload: 2048, bytesPerSec: 1024, bytesBurst: 4096, ratePerSec: 1000, rateBurst: 1000 })
  const frames = await connect(t, app, '10.0.0.1')
  const answers = await burst(frames, 8, 1000, 'p')
  t.same(answers.slice(0, 4).map((a) => a.op), ['ack', 'ack', 'ack', 'ack'], 'within the burst: published')
  const limited = answers.filter((a) => a.op === 'error')
  t.ok(limited.length >= 1, 'past the burst: refused')
  for (const answer of limited) t.match(answer, { code: 'RATE_LIMITED', message: /at most 1024 bytes per second/ })
  frames.send({ op: 'ping', ref: 'still' })
  t.equal((await frames.until((f) => f.ref === 'still')).op !== undefined, true, 'the connection stays open')
})

t.test('connections of one address share its byte budget; another address has its own', async (t) => {
  const app = await build(t, { maxPayload: 2048, bytesPerSec: 1024 * 1024, bytesBurst: 1024 * 1024, ipBytesPerSec: 1024, ipBytesBurst: 4096, ratePerSec: 1000, rateBurst: 1000 })
  const a1 = await connect(t, app, '10.0.0.7')
  const a2 = await connect(t, app, '10.0.0.7')
  const b = await connect(t, app, '10.0.0.8')
  const first = await burst(a1, 4, 1000, 'a')
  t.same(first.map((a) => a.op), ['ack', 'ack', 'ack', 'ack'])
  const second = await burst(a2, 4, 1000, 'b')
  const refused = second.filter((a) => a.op === 'error')
  t.ok(refused.length >= 1, 'the second connection of the address is over the shared budget')
  for (const answer of refused) t.match(answer, { code: 'RATE_LIMITED', message: /from this address/ })
  t.same((await burst(b, 4, 1000, 'c')).map((a) => a.op), ['ack', 'ack', 'ack', 'ack'], 'another address is not affected')
})

t.test('rtc signals draw on the same budgets', async (t) => {
  const app = await build(t, { maxPayload: 4096, bytesPerSec: 1024, bytesBurst: 4096, ratePerSec: 1000, rateBurst: 1000 })
  const frames = await connect(t, app, '10.0.0.9', '/rtc')
  const data = { type: 'offer', sdp: 'x'.repeat(900) }
  for (let i = 0; i < 8; i++) frames.send({ op: 'signal', room: 'public:r', to: 'ab12cd34.z', ref: `s${i}`, data })
  const answers = await answersTo(frames, 8, 's')
  t.same(answers.slice(0, 4).map((a) => a.code), ['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND'], 'within the budget: handled')
  t.ok(answers.some((a) => a.code === 'RATE_LIMITED'), 'over it: refused')
})

t.test('sustained abuse of the byte budget closes with 1008', async (t) => {
  const app = await build(t, { maxPayload: 2048, bytesPerSec: 1024, bytesBurst: 2048, ratePerSec: 1000, rateBurst: 4 })
  const frames = await connect(t, app, '10.0.0.10')
  const pad = 'x'.repeat(1900)
  for (let i = 0; i < 40; i++) frames.send({ op: 'publish', room: 'public:r', event: 'e', data: pad })
  t.equal((await frames.closed).code, 1008)
})

t.test('AddressRates keeps an entry only while its address has a connection', async (t) => {
  const rates = new AddressRates(100, 1000)
  const a = rates.acquire('a')
  t.equal(rates.acquire('a'), a, 'one bucket per address')
  rates.acquire('b')
  t.equal(rates.size, 2)
  rates.release('a')
  t.equal(rates.size, 2)
  rates.release('a')
  rates.release('b')
  rates.release('unknown')
  t.equal(rates.size, 0, 'no entry is left behind')
  t.equal(a.take(1000), true)
  t.equal(a.take(1000), false)
})

t.test('server.ts maps WS_RATE_BYTES_* and WS_IP_RATE_BYTES_* onto ws', async (t) => {
  const { app } = await buildTestApp({
    GATEWAYS: 'ws',
    CLIENT_PUBLISH_ROOMS: 'public:*',
    WS_MAX_PAYLOAD: '2048',
    WS_RATE_BYTES_PER_SEC: '1024',
    WS_RATE_BYTES_BURST: '4096',
    WS_IP_RATE_BYTES_PER_SEC: '1024',
    WS_IP_RATE_BYTES_BURST: '1048576'
  })
  t.after(() => app.close())
  const frames = await connect(t, app, '10.0.0.11')
  const answers = await burst(frames, 8, 1000, 'e')
  t.ok(answers.some((a) => a.code === 'RATE_LIMITED' && /1024 bytes per second/.test(a.message ?? '')))
})
