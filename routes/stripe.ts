import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type Stripe from 'stripe'
import type { StripeVerifier } from '../lib/stripe/verify.js'
import type { ProcessOutcome, StripeEventProcessor } from '../lib/stripe/process.js'
import { GatewayErrors } from '../lib/errors.js'

export interface StripeRoutesOptions<C> {
  path: string
  bodyLimit: number
  verifier: StripeVerifier
  processor: StripeEventProcessor<C>
  /** the handlers' context for one delivery */
  makeContext: (request: FastifyRequest, event: Stripe.Event, signal: AbortSignal) => C
}

interface CodedError extends Error {
  code: string
  statusCode?: number
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 500: 'Internal Server Error' }

/** Fastify's error shape, sent directly so a host's error handler cannot turn a 400 for Stripe into something else. */
function sendError (reply: FastifyReply, err: CodedError) {
  const statusCode = err.statusCode ?? 500
  return reply.code(statusCode).send({ statusCode, code: err.code, error: STATUS_TEXT[statusCode], message: err.message })
}

const isGatewayError = (err: unknown): err is CodedError =>
  err instanceof Error && typeof (err as CodedError).code === 'string' && (err as CodedError).code.startsWith('GW_STRIPE_')

/**
 * `POST <path>` of the stripe gateway. Registered in the gateway's own encapsulated scope: the body parsers set here
 * (every content type as a raw Buffer, so the signature can be checked over the exact bytes) apply to this route
 * only; the host's JSON parsing is untouched.
 */
export async function stripeRoutes<C> (scope: FastifyInstance, options: StripeRoutesOptions<C>) {
  const { verifier, processor, makeContext } = options
  scope.removeAllContentTypeParsers()
  const raw = (_request: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void) => { done(null, body) }
  scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, raw)
  scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, raw)

  scope.post(options.path, { bodyLimit: options.bodyLimit }, async (request, reply) => {
    let event: Stripe.Event
    try {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
      event = verifier.verify(body, signatureHeader(request))
    } catch (err) {
      if (!isGatewayError(err)) throw err
      // the reason only: never the header (it carries the signature) or the payload
      request.log.warn({ code: err.code, reason: err.message }, 'stripe webhook refused')
      return sendError(reply, err)
    }
    const outcome = await processor.process(event, (signal) => makeContext(request, event, signal))
    return answer(request, reply, event, outcome, processor.handlerTimeoutMs)
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

function answer (request: FastifyRequest, reply: FastifyReply, event: Stripe.Event, outcome: ProcessOutcome, budgetMs: number) {
  const log = request.log
  const about = { eventId: event.id, type: event.type }
  switch (outcome.kind) {
    case 'handled':
      if (outcome.recorded) log.info(about, 'stripe event handled')
      else log.error({ ...about, err: outcome.storeError }, 'stripe event handled but the dedupe store could not record it')
      return { received: true }
    case 'duplicate':
      log.info(about, 'stripe event already handled: duplicate delivery')
      return { received: true, duplicate: true }
    case 'failed':
      log.error({ ...about, err: outcome.error }, 'stripe event handler failed: the event is not recorded, so the retry runs it again')
      return sendError(reply, new GatewayErrors.STRIPE_HANDLER(event.type))
    case 'timeout':
      log.error({ ...about, budgetMs }, 'stripe event handler ran past its time budget: answered 500, the event is not recorded')
      void outcome.late.then(({ error }) => {
        if (error === undefined) log.warn(about, 'stripe event handler finished after its time budget')
        else log.warn({ ...about, err: error }, 'stripe event handler failed after its time budget')
      })
      return sendError(reply, new GatewayErrors.STRIPE_TIMEOUT(event.type, String(budgetMs)))
    case 'in-flight':
      log.warn({ ...about, result: outcome.result }, 'a concurrent delivery of this stripe event did not complete')
      return sendError(reply, new GatewayErrors.STRIPE_IN_FLIGHT(event.id))
    case 'store-error':
      log.error({ ...about, err: outcome.error }, 'stripe dedupe store failed')
      return sendError(reply, new GatewayErrors.STRIPE_STORE(event.id))
  }
}
