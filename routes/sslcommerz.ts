import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayErrors } from '../lib/errors.js'
import { isForm, type FormFields } from '../lib/webhooks/form.js'
import type { PipelineOutcome, WebhookPipeline } from '../lib/webhooks/pipeline.js'
import { notificationKey, type VerifiedNotification } from '../lib/sslcommerz/notification.js'
import type { SslcommerzNotification } from '../lib/sslcommerz/schemas.js'
import { formBodies, logOutcome, settle, type WebhookRoute } from './webhooks.js'

/** The routes SSLCommerz returns the buyer's browser to. */
export type ReturnKind = 'success' | 'fail' | 'cancel'

export interface SslcommerzRoutesOptions {
  ipnPath: string
  returnPaths: Record<ReturnKind, string>
  /** where each outcome sends the browser */
  redirects: Record<ReturnKind, string>
  bodyLimit: number
  pipeline: WebhookPipeline
  /** the notification, checked by hash and (for payments) the validation API; throws a coded error otherwise */
  verify: (form: FormFields) => Promise<VerifiedNotification>
  /** runs the handlers of its status */
  handle: (verified: VerifiedNotification, source: 'ipn' | ReturnKind, request: FastifyRequest, signal: AbortSignal) => Promise<void>
  /** publishes an accepted notification, when the gateway publishes */
  publish?: (notification: SslcommerzNotification, request: FastifyRequest) => Promise<void>
}

const id = (v: VerifiedNotification) => JSON.stringify(notificationKey(v.notification))

const ROUTE: WebhookRoute<VerifiedNotification> = {
  label: 'sslcommerz notification',
  refused: 'sslcommerz notification refused',
  about: ({ notification }) => ({ tranId: notification.tran_id, valId: notification.val_id, status: notification.status }),
  errors: {
    handler: (v) => new GatewayErrors.SSLCOMMERZ_HANDLER(id(v)),
    timeout: (v, budgetMs) => new GatewayErrors.SSLCOMMERZ_TIMEOUT(id(v), String(budgetMs)),
    inFlight: (v) => new GatewayErrors.SSLCOMMERZ_IN_FLIGHT(id(v)),
    store: () => new GatewayErrors.STORE_UNAVAILABLE('the sslcommerz dedupe store failed')
  }
}

/**
 * Where a browser returning to `route` goes: a verified payment (VALID or VALIDATED, checked with the validation
 * API) to the success URL, a verified cancellation to the cancel URL, any other verified notification to the fail
 * URL; what did not verify never to the success URL (the fail URL, or the cancel URL on the cancel route). A
 * verified payment whose handler failed still lands on success: the payment is real, and SSLCommerz's IPN retries
 * the handler.
 */
export function landing (outcome: PipelineOutcome<VerifiedNotification>, route: ReturnKind): ReturnKind {
  if (!('event' in outcome)) return route === 'cancel' ? 'cancel' : 'fail'
  const { event } = outcome
  if (event.paid) return 'success'
  return event.notification.status === 'CANCELLED' ? 'cancel' : 'fail'
}

/**
 * The sslcommerz gateway's routes, in its own scope (which parses url-encoded forms only):
 * - `POST <ipnPath>`: the IPN; 200 `{"received":true}` (`"duplicate":true` for a repeat), 400 for a bad hash,
 *   missing fields or a payment that does not validate, 503 when the validation API is down, 500 for a handler that
 *   throws (not marked handled: SSLCommerz retries);
 * - `POST <success|fail|cancel path>`: the form SSLCommerz posts with the buyer's browser, checked the same way
 *   (through the same pipeline: whichever of the IPN and the browser comes first handles it, the other is a
 *   duplicate), then a 303 to the host's URL for the outcome.
 */
export async function sslcommerzRoutes (scope: FastifyInstance, options: SslcommerzRoutesOptions) {
  const { pipeline } = options
  formBodies(scope, options.bodyLimit)

  const run = async (request: FastifyRequest, source: 'ipn' | ReturnKind) => await pipeline.process(async () => {
    if (!isForm(request.body)) throw Object.assign(new GatewayErrors.SSLCOMMERZ_MEDIA_TYPE(), { reason: 'not a form' })
    return await options.verify(request.body)
  }, (verified) => ({
    key: notificationKey(verified.notification),
    handle: async (signal) => { await options.handle(verified, source, request, signal) },
    publish: async () => { await options.publish?.(verified.notification, request) }
  }))

  scope.post(options.ipnPath, { bodyLimit: options.bodyLimit }, async (request, reply) => {
    const settled = settle(request, reply, await run(request, 'ipn'), ROUTE)
    if (settled.kind === 'sent') return reply
    return settled.duplicate ? { received: true, duplicate: true } : { received: true }
  })

  for (const kind of ['success', 'fail', 'cancel'] as const) {
    scope.post(options.returnPaths[kind], { bodyLimit: options.bodyLimit }, async (request, reply) => {
      const outcome = await run(request, kind)
      // logged like an IPN; the browser is redirected whatever happened (SSLCommerz's IPN retries what failed here)
      logOutcome(request.log, outcome, ROUTE)
      const to = landing(outcome, kind)
      request.log.info({ route: kind, outcome: outcome.kind, to }, 'sslcommerz buyer returned')
      return await reply.code(303).header('cache-control', 'no-store').redirect(options.redirects[to], 303)
    })
  }
}
