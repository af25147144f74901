import type { FastifyInstance, FastifyRequest } from 'fastify'
import type Stripe from 'stripe'
import { GatewayErrors } from '../lib/errors.js'
import type { WebhookPipeline } from '../lib/webhooks/pipeline.js'
import { rawBodies, settle, type WebhookRoute } from './webhooks.js'

export interface StripeRoutesOptions {
  path: string
  bodyLimit: number
  pipeline: WebhookPipeline
  /** the verified event, or throws GW_STRIPE_SIGNATURE / GW_STRIPE_EVENT (400) */
  verify: (body: Buffer, header: string | string[] | undefined) => Stripe.Event
  /** runs the event's handlers */
  handle: (event: Stripe.Event, request: FastifyRequest, signal: AbortSignal) => Promise<void>
  /** publishes the handled event, when the gateway publishes */
  publish?: (event: Stripe.Event, request: FastifyRequest) => Promise<void>
}

const ROUTE: WebhookRoute<Stripe.Event> = {
  label: 'stripe event',
  refused: 'stripe webhook refused',
  about: (event) => ({ eventId: event.id, type: event.type }),
  errors: {
    handler: (event) => new GatewayErrors.STRIPE_HANDLER(event.type),
    timeout: (event, budgetMs) => new GatewayErrors.STRIPE_TIMEOUT(event.type, String(budgetMs)),
    inFlight: (event) => new GatewayErrors.STRIPE_IN_FLIGHT(event.id),
    store: (event) => new GatewayErrors.STRIPE_STORE(event.id)
  }
}

/**
 * `POST <path>` of the stripe gateway, in the gateway's own scope: every content type is read as a raw Buffer there
 * (the signature covers the exact bytes) and the host's parsers are untouched. Verification, dedupe, handlers and
 * publish are the shared webhook pipeline's.
 */
export async function stripeRoutes (scope: FastifyInstance, options: StripeRoutesOptions) {
  const { pipeline } = options
  rawBodies(scope, options.bodyLimit)

  scope.post(options.path, { bodyLimit: options.bodyLimit }, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    const outcome = await pipeline.process(() => options.verify(body, signatureHeader(request)), (event) => ({
      key: event.id,
      handle: async (signal) => { await options.handle(event, request, signal); return event.type },
      publish: options.publish === undefined ? undefined : async () => { await options.publish?.(event, request) }
    }))
    const settled = settle(request, reply, outcome, ROUTE)
    if (settled.kind === 'sent') return reply
    return settled.duplicate ? { received: true, duplicate: true } : { received: true }
  })
}

/**
 * The Stripe-Signature header as sent. Node joins repeated header lines into one string, which would hide a second
 * header; the raw header list shows every line, so two headers are refused the same way over any transport.
 */
function signatureHeader (request: FastifyRequest): string | string[] | undefined {
  const header = request.headers['stripe-signature']
  if (typeof header !== 'string') return header
  const raw = request.raw.rawHeaders
  const lines: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === 'stripe-signature') lines.push(raw[i + 1])
  return lines.length > 1 ? lines : header
}
