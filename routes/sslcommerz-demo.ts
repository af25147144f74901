import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { SslcommerzNotification } from '../lib/sslcommerz/schemas.js'
import { sslcommerzEvent } from '../lib/sslcommerz/publish.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'

/** The public room the demo page watches for the outcome of its own sandbox payments. */
export const DEMO_PAYMENTS_ROOM = 'public:demo-payments'
/** Demo payments have tran_ids with this prefix; only theirs reach the public demo room. */
export const DEMO_TRAN_PREFIX = 'demo-'

/**
 * The event of a demo payment, also to the public demo room (an anonymous demo page may join it): server.ts adds this
 * as the sslcommerz gateway's `'*'` handler in the sandbox. Other payments are left alone.
 */
export async function republishDemoPayment (rooms: RoomRegistry, notification: SslcommerzNotification): Promise<void> {
  if (!notification.tran_id.startsWith(DEMO_TRAN_PREFIX)) return
  const { name, data } = sslcommerzEvent(notification)
  await rooms.publish(DEMO_PAYMENTS_ROOM, name, data)
}

export interface SslcommerzDemoRoutesOptions {
  /** the gateway's return and IPN paths */
  paths: { success: string, fail: string, cancel: string, ipn: string }
}

/**
 * The "Pay with SSLCommerz" block of the demo page (sandbox only, registered by server.ts, which also passes
 * `/demo/sslcommerz` as the page's `sslcommerz` endpoint so the block shows):
 * - `GET /demo/sslcommerz`: 200 `{ room }`, the room the block follows (404 without the gateway);
 * - `POST /demo/sslcommerz/checkout`: opens a 100 BDT sandbox session for a `demo-...` tran_id and answers
 *   `{ url, tranId, room, since }`: the page goes to `url`, and when the buyer is back it joins `room` from
 *   `since` (the id of a marker event published now), so the payment's `sslcommerz.valid` event is replayed to it
 *   even if it was published while the buyer was on SSLCommerz's page.
 * The return and IPN URLs are this request's own origin (what the browser sees of this server).
 */
export async function sslcommerzDemoRoutes (app: FastifyInstance, options: SslcommerzDemoRoutesOptions) {
  app.get('/demo/sslcommerz', async () => ({ room: DEMO_PAYMENTS_ROOM }))

  app.post('/demo/sslcommerz/checkout', async (request) => {
    const tranId = `${DEMO_TRAN_PREFIX}${randomBytes(8).toString('hex')}`
    const origin = `${request.protocol}://${request.host}`
    const { id: since } = await app.rooms.publish(DEMO_PAYMENTS_ROOM, 'demo.checkout', { tran_id: tranId })
    const url = await app.sslcommerz.createSession({
      tranId,
      amount: 100,
      product: { name: 'fastify-gateways demo', category: 'demo', profile: 'non-physical-goods' },
      customer: { name: 'Demo Buyer', email: 'buyer@example.com', phone: '01700000000', address: 'Demo Road 1', city: 'Dhaka', postcode: '1000' },
      successUrl: origin + options.paths.success,
      failUrl: origin + options.paths.fail,
      cancelUrl: origin + options.paths.cancel,
      ipnUrl: origin + options.paths.ipn
    })
    return { url, tranId, room: DEMO_PAYMENTS_ROOM, since }
  })
}
