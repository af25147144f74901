import http from 'node:http'
import fc from 'fast-check'
import type { RouteOptions } from 'fastify'
import { buildTestApp } from './app.js'

/**
 * The hostile suite's shared pieces (test/fuzz-*, test/soak-*): server.ts's app with every gateway that needs no
 * broker, the list of its routes as Fastify registered them (an `onRoute` hook, so routes other helpers add later are
 * fuzzed without anyone listing them), arbitraries of hostile input, and a raw HTTP client that reads at most a
 * little of any answer.
 */

export const API_KEY = 'hostile-suite-key-0123456789'
export const HOOK_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
export const JWT_SECRET = 'hostile-suite-jwt-secret-that-is-long-enough'

/**
 * Every gateway that starts without a broker, with what it needs (provider APIs point at a closed local port, so an
 * outbound call fails the way an outage does). Gateways a build does not wire yet are left out with a note.
 */
export const HOSTILE_ENV: Record<string, string> = {
  LOG_LEVEL: 'info',
  AUTH_JWT_SECRET: JWT_SECRET,
  CLIENT_PUBLISH_ROOMS: 'public:*',
  STRIPE_WEBHOOK_SECRET: 'whsec_hostile',
  TWILIO_AUTH_TOKEN: 'hostile-token',
  EXTERNAL_API_KEYS: `ops=${API_KEY}`,
  EXTERNAL_WEBHOOK_SECRETS: `src=${HOOK_SECRET}`,
  SSLCOMMERZ_STORE_ID: 'hostile',
  SSLCOMMERZ_STORE_PASSWORD: 'hostile-password',
  SSLCOMMERZ_API_URL: 'http://127.0.0.1:9',
  METRICS: 'true',
  ADMIN_PASSWORD: 'hostile-admin-password'
}
const CANDIDATE_GATEWAYS = ['ws', 'sse', 'rtc', 'stripe', 'sms', 'sslcommerz', 'external']

export interface RouteEntry { method: string, url: string }

/** server.ts's app with every broker-less gateway; its routes as registered; its captured log. */
export async function buildHostileApp (env: Record<string, string> = {}) {
  let gateways = [...CANDIDATE_GATEWAYS]
  for (;;) {
    const routes: RouteEntry[] = []
    const onRoute = (route: RouteOptions) => {
      for (const method of Array.isArray(route.method) ? route.method : [route.method]) routes.push({ method, url: route.url })
    }
    try {
      const built = await buildTestApp({ ...HOSTILE_ENV, GATEWAYS: gateways.join(','), ...env }, { onRoute })
      return { ...built, routes, gateways }
    } catch (err) {
      // a gateway not wired in this build yet: fuzz the others
      const unwired = /the (\S+) gateway is not wired/.exec((err as Error).message)
      if (unwired === null || !gateways.includes(unwired[1])) throw err
      gateways = gateways.filter((name) => name !== unwired[1])
    }
  }
}

/** Room names: valid ones, near misses, and junk. */
export const roomArb = fc.oneof(
  fc.stringMatching(/^public:[a-z0-9]{1,12}$/),
  fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/),
  fc.constantFrom('user:alice', 'user:', ':', '', 'a'.repeat(129), 'public:a/../b', 'public:%00', 'r\u0000', 'r\u2028'),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 64 })
)

/** Strings that have broken parsers: empty, huge, control characters, lone surrogates, JSON-ish, numbers. */
export const nastyString = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', '__proto__', 'constructor', '{"a":1}', '[]', 'null', '-1', '1e999', 'NaN',
    '%', '%zz', '../../etc/passwd', '<script>', 'Bearer', 'whsec_', 'x'.repeat(5000)),
  fc.integer().map(String)
)

/** Any JSON value, sometimes with dangerous keys or depth. */
export const jsonArb = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom({ __proto__: { polluted: true } }, { constructor: { prototype: { x: 1 } } }, JSON.parse('{"__proto__":{"polluted":1}}')) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 300 }).map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown) }
)

/** A header value Node will send: visible ASCII and spaces. */
export const headerValue = fc.oneof(fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,80}$/), fc.constantFrom('0', '-1', '99999999999999999999', 'x'.repeat(4000)))

export interface RawAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  /** the first bytes of the body (an event stream is cut after its head) */
  body: string
}

export interface RawRequest {
  method: string
  path: string
  headers: Record<string, string>
  body?: Buffer
}

/** One request on a fresh connection; resolves with what came back, an event stream cut after its head. */
export async function send (port: number, request: RawRequest, timeoutMs = 10_000): Promise<RawAnswer> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: request.method, path: request.path, headers: request.headers, agent: false, timeout: timeoutMs }, (res) => {
      const stream = String(res.headers['content-type'] ?? '').startsWith('text/event-stream')
      let body = ''
      const done = () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) }
      if (stream) {
        res.destroy()
        done()
        return
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < 65_536) body += chunk })
      res.on('end', done)
      res.on('error', done)
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer to ${request.method} ${request.path.slice(0, 80)} within ${timeoutMs} ms`)) })
    req.on('error', reject)
    if (request.body !== undefined) req.setHeader('content-length', String(request.body.length))
    req.end(request.body)
  })
}
