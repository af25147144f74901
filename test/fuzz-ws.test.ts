import t from 'tap'
import fc from 'fast-check'
import type { AddressInfo } from 'node:net'
import { SignJWT } from 'jose'
import { ERROR_CODES } from '../lib/ws/protocol.js'
import { buildHostileApp, JWT_SECRET, jsonArb, nastyString, roomArb } from './helpers/hostile.js'
import { openWs, type Frames } from './helpers/ws-client.js'

/**
 * Property-based fuzzing of every frame type of `/ws` and `/rtc` (docs/security.md, "The hostile suite"): known ops
 * with hostile fields, unknown ops, JSON that is not an object, binary frames, text frames that are not UTF-8, deep
 * and huge data, over anonymous and authenticated connections. After each frame a `ping` probe must come back (frames
 * are handled in order, so every answer to the frame came before it) unless the connection was closed with a code
 * of the protocol; every `error` carries a code of the protocol; nothing closes with 1011 or logs at error level; and
 * a normal client is served at the end.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 25) * 12

const SERVER_OPS = new Set(['hello', 'joined', 'left', 'event', 'ack', 'pong', 'error', 'refresh', 'refreshed', 'peer-joined', 'peer-left', 'signal'])
/** close codes a hostile client may be given: policy (rate, auth), too large, try later, and ws's own protocol errors */
const DOCUMENTED_CLOSES = new Set([1008, 1009, 1013, 1007, 1002])

async function token (sub: string, rooms?: string[]): Promise<string> {
  return await new SignJWT(rooms === undefined ? {} : { rooms }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(new TextEncoder().encode(JWT_SECRET))
}

const goodRoom = fc.constantFrom('public:a', 'public:b', 'user:fuzz', 'team:x')
const frameFields = {
  room: fc.oneof({ weight: 3, arbitrary: goodRoom }, { weight: 1, arbitrary: roomArb }),
  event: fc.oneof(fc.constantFrom('chat', 'e'), nastyString),
  data: jsonArb,
  since: fc.oneof(fc.constantFrom('0-0', 'zz-1', '-1'), nastyString),
  token: fc.oneof(fc.constant('VALID'), nastyString),
  to: nastyString,
  ref: fc.oneof(fc.string({ maxLength: 200 }), fc.double(), fc.constant(null), fc.jsonValue({ maxDepth: 1 }))
}
const OPS = ['join', 'leave', 'publish', 'ping', 'auth', 'refresh', 'signal', 'hello', 'event']

/** One hostile frame: what to send, and whether to send it as binary. */
interface Hostile { text?: string, bytes?: Buffer, binary: boolean }

const frameArb: fc.Arbitrary<Hostile> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...OPS) }, { weight: 1, arbitrary: nastyString }), ...frameFields }, { requiredKeys: ['op'] })
    .map((frame) => ({ text: JSON.stringify(frame), binary: false })) },
  { weight: 1, arbitrary: fc.oneof(nastyString, jsonArb.map((v) => JSON.stringify(v) ?? 'null')).map((text) => ({ text, binary: false })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((a) => ({ bytes: Buffer.from(a), binary: true })) },
  { weight: 1, arbitrary: fc.constantFrom<Hostile>(
    { bytes: Buffer.from([0xc0, 0xaf, 0xff]), binary: false },
    { text: `{"op":"publish","room":"public:a","event":"e","data":${'['.repeat(5000)}${']'.repeat(5000)}}`, binary: false },
    { text: `{"op":"publish","room":"public:a","event":"e","data":"${'x'.repeat(70_000)}"}`, binary: false },
    { text: '{"op":"join","room":"public:a","__proto__":{"op":"x"}}', binary: false },
    { text: '{"op":"signal","room":"public:a","to":"x","data":{"type":"offer","sdp":"v=0"}}', binary: false }
  ) }
)

t.test('every frame type of /ws and /rtc: hostile frames get protocol answers or closes, and the server keeps serving', async (t) => {
  t.setTimeout(240_000)
  // limits lifted so the frames reach the handlers (the limits have their own tests: hardening-rates)
  const { app, logs } = await buildHostileApp({
    WS_RATE_PER_SEC: '100000', WS_RATE_BURST: '100000', WS_RATE_BYTES_PER_SEC: String(1 << 30), WS_RATE_BYTES_BURST: String(1 << 30),
    WS_IP_RATE_BYTES_PER_SEC: String(1 << 30), WS_IP_RATE_BYTES_BURST: String(1 << 30), RTC_SIGNAL_RATE_PER_SEC: '100000'
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const valid = await token('fuzz', ['team:*'])
  const paths = ['/ws', `/ws?token=${valid}`, '/rtc', `/rtc?token=${valid}`]
  const pool: Array<Frames | null> = paths.map(() => null)
  const problems: string[] = []
  const closes: number[] = []
  let probes = 0

  const connection = async (i: number): Promise<Frames> => {
    const open = pool[i]
    if (open !== null) return open
    const frames = await openWs(`ws://127.0.0.1:${port}${paths[i]}`)
    frames.closed.then(({ code }) => {
      closes.push(code)
      if (!DOCUMENTED_CLOSES.has(code)) problems.push(`${paths[i].slice(0, 8)} closed with ${code} (${frames.all.slice(-2).map((f) => JSON.stringify(f)).join(' ').slice(0, 300)})`)
      pool[i] = null
    }, () => {})
    t.after(() => { frames.ws.terminate() })
    pool[i] = frames
    await frames.until((f) => f.op === 'hello')
    return frames
  }

  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: paths.length - 1 }), frameArb, async (i, hostile) => {
    const frames = await connection(i)
    const from = frames.all.length
    const text = hostile.text?.replace('"VALID"', JSON.stringify(valid))
    frames.ws.send(text ?? hostile.bytes as Buffer, { binary: hostile.binary })
    const ref = `probe-${++probes}`
    frames.send({ op: 'ping', ref })
    try {
      await frames.until((f) => f.ref === ref, 10_000)
    } catch (err) {
      // closed with a protocol code: fine (checked when it closed); anything else is a frame that got no answer
      if (!/socket closed/.test((err as Error).message)) problems.push(`no pong after ${(text ?? 'binary').slice(0, 200)}: ${(err as Error).message.slice(0, 200)}`)
      await frames.closed
      return problems.length === 0
    }
    for (const frame of frames.all.slice(from)) {
      if (!SERVER_OPS.has(frame.op)) problems.push(`unknown server op ${JSON.stringify(frame).slice(0, 200)}`)
      if (frame.op === 'error' && !(ERROR_CODES as readonly string[]).includes(frame.code)) problems.push(`error code outside the protocol: ${JSON.stringify(frame).slice(0, 200)}`)
      if (frame.op === 'error' && frame.code === 'UNAVAILABLE') problems.push(`UNAVAILABLE without an outage: ${JSON.stringify(frame).slice(0, 200)} after ${(text ?? '').slice(0, 200)}`)
    }
    return problems.length === 0
  }), { numRuns: RUNS, endOnFailure: true }).catch((err: Error) => {
    if (problems.length === 0) problems.push(err.message.slice(0, 600))
  })
  t.same(problems, [], `${probes} hostile frames, ${closes.length} closes (${[...new Set(closes)].join(', ') || 'none'})`)
  const errors = logs.lines.filter((line) => JSON.parse(line).level >= 50)
  t.same(errors.slice(0, 5), [], 'nothing logged at error level')

  const a = await openWs(`ws://127.0.0.1:${port}/ws`)
  const b = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.after(() => { a.ws.terminate(); b.ws.terminate() })
  await a.next()
  await b.next()
  a.send({ op: 'join', room: 'public:after', ref: 1 })
  await a.until((f) => f.ref === 1)
  b.send({ op: 'publish', room: 'public:after', event: 'after', data: { ok: true }, ref: 2 })
  t.equal((await b.until((f) => f.ref === 2)).op, 'ack')
  t.match(await a.until((f) => f.op === 'event'), { event: 'after', data: { ok: true } }, 'a normal client is served')
})
