import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildTestApp } from './helpers/app.js'
import { openWs } from './helpers/ws-client.js'
import { MAX_JSON_DEPTH, isTooDeep } from '../lib/json.js'

/**
 * Deeply nested JSON (docs/security.md, "Inbound JSON"): 32,000 levels fit in one 64 KB frame and overflowed the stack
 * in the publish path (ws answered UNAVAILABLE and logged a stack; HTTP with an Idempotency-Key answered 500). Past
 * MAX_JSON_DEPTH levels it is now a bad request on every transport.
 */

const KEY = 'deep-json-test-key-0123456789'
const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels)

t.test('deep JSON is a bad request over ws, rtc and the external API, and nothing crashes', async (t) => {
  const { app, logs } = await buildTestApp({
    GATEWAYS: 'ws,rtc,external',
    CLIENT_PUBLISH_ROOMS: 'public:*',
    EXTERNAL_API_KEYS: `ops=${KEY}`
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  const ws = await openWs(`ws://127.0.0.1:${port}/ws`)
  t.after(() => { ws.ws.terminate() })
  await ws.next()
  ws.send(`{"op":"publish","room":"public:a","event":"e","ref":"deep","data":${deep(32_000)}}`)
  const refused = await ws.until((f) => f.ref === 'deep')
  t.same({ op: refused.op, code: refused.code }, { op: 'error', code: 'BAD_MESSAGE' }, '32,000 levels: BAD_MESSAGE, not UNAVAILABLE')
  t.match(refused.message, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`))
  // the limit counts the frame's own object: data may nest MAX_JSON_DEPTH - 1 levels
  ws.send(`{"op":"publish","room":"public:a","event":"e","ref":"edge","data":${deep(MAX_JSON_DEPTH - 1)}}`)
  t.equal((await ws.until((f) => f.ref === 'edge')).op, 'ack', 'at the limit: published')
  ws.send(`{"op":"publish","room":"public:a","event":"e","ref":"over","data":${deep(MAX_JSON_DEPTH)}}`)
  t.equal((await ws.until((f) => f.ref === 'over')).code, 'BAD_MESSAGE', 'one level more: refused')
  ws.send({ op: 'ping', ref: 'alive' })
  t.equal((await ws.until((f) => f.ref === 'alive')).op, 'pong', 'the connection stays open')

  const rtc = await openWs(`ws://127.0.0.1:${port}/rtc`)
  t.after(() => { rtc.ws.terminate() })
  await rtc.next()
  rtc.send(`{"op":"signal","room":"public:r","to":"x","ref":"deep","data":{"sdp":${deep(20_000)}}}`)
  t.equal((await rtc.until((f) => f.ref === 'deep')).code, 'BAD_MESSAGE', 'rtc too')

  for (const headers of [{ 'idempotency-key': 'deep-1' }, {}] as Array<Record<string, string>>) {
    const res = await fetch(`http://127.0.0.1:${port}/api/rooms/public:a/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
      body: `{"event":"e","data":${deep(30_000)}}`
    })
    const body = await res.json() as { statusCode: number, code: string, message: string }
    t.equal(res.status, 400, `HTTP ${JSON.stringify(headers)}: 400, not 500`)
    t.equal(body.code, 'GW_INVALID_BODY')
    t.match(body.message, /deeper than/)
  }
  await app.close()
  const text = logs.text()
  t.notMatch(text, /Maximum call stack/, 'no stack overflow anywhere')
  t.notMatch(text, /"level":50/, 'nothing logged as an error')
})

t.test('isTooDeep', async (t) => {
  t.equal(isTooDeep(1), false)
  t.equal(isTooDeep(null), false)
  t.equal(isTooDeep(JSON.parse(deep(3)), 3), false)
  t.equal(isTooDeep(JSON.parse(deep(4)), 3), true)
  t.equal(isTooDeep({ a: { b: [1, { c: null }] } }, 3), true, 'objects and arrays both count')
  t.equal(isTooDeep({ a: { b: [1, 'x'] } }, 3), false)
  t.equal(isTooDeep(JSON.parse(deep(4)), 3, 7), false, 'text too short to be that deep: not walked')
  t.equal(isTooDeep(JSON.parse(deep(100_000))), true, 'no stack overflow in the check itself')
})
