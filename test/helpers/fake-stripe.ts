import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import Stripe from 'stripe'
import { MemoryDedupeStore } from '../../lib/stores/dedupe.js'

/** One request the fake Stripe API received. */
export interface FakeStripeRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  body: string
}

export type FakeStripeRoute = (request: FakeStripeRequest) => { status?: number, body: unknown }

/**
 * A local stand-in for the Stripe REST API on 127.0.0.1 (random port): routes are `'GET /v1/...'` keys, anything
 * else answers Stripe's 404 error shape. Point the real client at it with `clientOptionsFor(port)`.
 */
export async function startFakeStripe (routes: Record<string, FakeStripeRoute>) {
  const requests: FakeStripeRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1')
      const request: FakeStripeRequest = {
        method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString()
      }
      requests.push(request)
      const route = routes[`${request.method} ${request.path}`]
      const answer = route === undefined
        ? { status: 404, body: { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${request.method}: ${request.path})` } } }
        : route(request)
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', 'request-id': `req_${requests.length}` })
      res.end(JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    requests,
    clientOptions: clientOptionsFor(port),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** The verified recipe: the real client against a local fake, no retries, no telemetry. */
export function clientOptionsFor (port: number): Stripe.StripeConfig {
  return { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries: 0, telemetry: false }
}

export const WEBHOOK_SECRET = 'whsec_test_0123456789abcdefABCDEF'
export const OLD_WEBHOOK_SECRET = 'whsec_test_oldoldoldoldoldoldold'
export const SECRET_KEY = 'sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc'

let seq = 0

/** A Stripe event payload (snapshot event) as Stripe sends it: the JSON text that is signed. */
export function eventPayload (type: string, object: Record<string, unknown>, id = `evt_test_${++seq}_${Date.now()}`): string {
  return JSON.stringify({
    id,
    object: 'event',
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object }
  }, null, 2)
}

export function checkoutSession (fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: `cs_test_${++seq}`, object: 'checkout.session', amount_total: 4000, currency: 'eur', client_reference_id: null, metadata: {}, ...fields }
}

/** A Stripe-Signature header for `payload` (with the SDK's own test helper). */
export function sign (payload: string, secret = WEBHOOK_SECRET, timestamp?: number): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret, ...(timestamp === undefined ? {} : { timestamp }) })
}

/** One header with a `v1=` signature per secret, as Stripe sends while an endpoint secret is being rolled. */
export function signRotating (payload: string, secrets: string[], timestamp = Math.floor(Date.now() / 1000)): string {
  const signatures = secrets.map((secret) => sign(payload, secret, timestamp).split(',').find((part) => part.startsWith('v1=')))
  return [`t=${timestamp}`, ...signatures].join(',')
}

/** A MemoryDedupeStore that tells when a delivery starts waiting for another, and can be made to fail. */
export class ObservedStore extends MemoryDedupeStore {
  waiting: Promise<void>
  private onWait: () => void = () => {}
  fail: Partial<Record<'claim' | 'complete' | 'release' | 'wait', boolean>> = {}
  constructor () {
    super()
    this.waiting = new Promise((resolve) => { this.onWait = resolve })
  }

  override async claim (key: string, leaseMs: number) {
    if (this.fail.claim === true) throw new Error('store down')
    return await super.claim(key, leaseMs)
  }

  override async complete (key: string, value: string, ttlMs: number) {
    if (this.fail.complete === true) throw new Error('store down')
    return await super.complete(key, value, ttlMs)
  }

  override async release (key: string) {
    if (this.fail.release === true) throw new Error('store down')
    return await super.release(key)
  }

  override async wait (key: string, timeoutMs: number) {
    if (this.fail.wait === true) throw new Error('store down')
    const result = super.wait(key, timeoutMs)
    this.onWait()
    return await result
  }
}

