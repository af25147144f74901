import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PipelineOutcome } from '../lib/webhooks/pipeline.js'
import { parseForm } from '../lib/webhooks/form.js'

/**
 * The HTTP side of the inbound webhook pipeline (lib/webhooks), shared by the stripe, sms, sslcommerz and Standard
 * Webhooks routes: body parsers scoped to a gateway, and the one way an outcome becomes an answer.
 *
 * - a refusal (verification said no: 400, 401, 403, 415) is sent at once in Fastify's error shape
 *   `{"statusCode","code","error","message"}`, so a host's error handler cannot change what the provider is told;
 * - a failure on our side (a handler threw or ran out of time, a concurrent delivery did not complete, the store or a
 *   validation API is down) is logged with the delivery and thrown as a coded error: the host's error handler sees
 *   it, and without one Fastify answers the same shape;
 * - handled and duplicate deliveries are answered by the route, in its provider's form.
 */

export interface CodedError extends Error {
  code: string
  statusCode?: number
  /** a short reason for the logs (a signature problem, ...) */
  reason?: string
  /** more log fields of a refusal (the URL a signature was checked against, ...): never a secret */
  details?: Record<string, unknown>
}

/** The coded errors a gateway answers the failures of a verified delivery with (each gateway keeps its codes). */
export interface FailureErrors<E> {
  handler: (event: E) => Error
  timeout: (event: E, budgetMs: number) => Error
  inFlight: (event: E, result: 'released' | 'timeout') => Error
  store: (event: E) => Error
}

export interface WebhookRoute<E> {
  /** how log lines name a delivery: `stripe event`, `webhook`, `Twilio webhook`, `SSLCommerz notification` */
  label: string
  /** the log line of a refusal: `stripe webhook refused`, ... */
  refused: string
  /** log fields that identify a verified delivery (never a secret or a signature) */
  about: (event: E) => Record<string, unknown>
  errors: FailureErrors<E>
}

const isCoded = (err: unknown): err is CodedError =>
  err instanceof Error && typeof (err as CodedError).code === 'string'

const asError = (err: unknown): Error => err instanceof Error ? err : new Error(String(err))

/** Sends `err` as Fastify's error body with its status. */
export function sendError (reply: FastifyReply, err: CodedError): FastifyReply {
  const statusCode = err.statusCode ?? 500
  return reply.code(statusCode).send({ statusCode, code: err.code, error: STATUS_CODES[statusCode] ?? 'Error', message: err.message })
}

export type Settled = { kind: 'answer', duplicate: boolean, value: string } | { kind: 'sent' }

/**
 * Logs `outcome` and turns it into what the route does next: `answer` (handled now, or a duplicate: the route
 * replies in its provider's form, with the recorded `value`), `sent` (a refusal, already answered), or a thrown
 * coded error (a failure).
 */
export function settle<E> (request: FastifyRequest, reply: FastifyReply, outcome: PipelineOutcome<E>, route: WebhookRoute<E>): Settled {
  const failure = logOutcome(request.log, outcome, route)
  if (failure !== null) throw failure
  if (outcome.kind === 'rejected') {
    sendError(reply, outcome.error as CodedError)
    return { kind: 'sent' }
  }
  // what is left: handled or duplicate, each with the recorded value
  const done = outcome as Extract<PipelineOutcome<E>, { kind: 'handled' | 'duplicate' }>
  return { kind: 'answer', duplicate: done.kind === 'duplicate', value: done.value }
}

/**
 * Logs `outcome` (an info line when handled, a warning for a refusal or an incomplete concurrent delivery, an error
 * for a failure) and returns the coded error a failure answers with, or null for handled, duplicate and refused.
 */
export function logOutcome<E> (log: FastifyBaseLogger, outcome: PipelineOutcome<E>, route: WebhookRoute<E>): Error | null {
  const { label, errors } = route
  if (outcome.kind === 'rejected') {
    const err = outcome.error
    if (!isCoded(err)) throw err
    // the reason only: never the headers (they carry signatures) or the payload
    log.warn({ ...err.details, code: err.code, reason: err.reason ?? err.message }, route.refused)
    return null
  }
  if (outcome.kind === 'unavailable') {
    log.error({ err: outcome.error }, `${label} could not be verified: not handled, so the provider's retry runs it again`)
    return asError(outcome.error)
  }
  const { event } = outcome
  const about = route.about(event)
  switch (outcome.kind) {
    case 'handled':
      if (outcome.recorded) log.info(about, `${label} handled`)
      else log.error({ ...about, err: outcome.storeError }, `${label} handled but the dedupe store could not record it`)
      return null
    case 'duplicate':
      log.info(about, `${label} already handled: duplicate delivery`)
      return null
    case 'failed':
      if (outcome.stage === 'publish') {
        log.error({ ...about, err: outcome.error }, `${label} handled but publishing failed: it is not recorded, so the retry runs it again`)
        return isCoded(outcome.error) ? outcome.error : errors.handler(event)
      }
      log.error({ ...about, err: outcome.error }, `${label} handler failed: it is not recorded, so the retry runs it again`)
      return errors.handler(event)
    case 'timeout':
      log.error({ ...about, budgetMs: outcome.budgetMs }, `${label} handler ran past its time budget: it is not recorded`)
      void outcome.late.then(({ error }) => {
        if (error === undefined) log.warn(about, `${label} handler finished after its time budget`)
        else log.warn({ ...about, err: error }, `${label} handler failed after its time budget`)
      })
      return errors.timeout(event, outcome.budgetMs)
    case 'in-flight':
      log.warn({ ...about, result: outcome.result }, `a concurrent delivery of this ${label} did not complete`)
      return errors.inFlight(event, outcome.result)
    case 'store-error':
      log.error({ ...about, err: outcome.error }, `${label}: the dedupe store failed`)
      return errors.store(event)
  }
}

const passBuffer = (_request: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void) => { done(null, body) }

/**
 * Every content type read as a raw Buffer, in this scope only: signatures are checked over the exact bytes. The
 * host's own parsers (JSON, text) are untouched outside the scope.
 */
export function rawBodies (scope: FastifyInstance, bodyLimit: number): void {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, passBuffer)
  scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, passBuffer)
}

/**
 * `application/x-www-form-urlencoded` only, in this scope only, into a record without a prototype (a repeated name
 * keeps every value, in order). Any other content type is Fastify's 415; the host's parsers are untouched.
 */
export function formBodies (scope: FastifyInstance, bodyLimit: number): void {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit },
    (_request, body, done) => { done(null, parseForm(body as string)) })
}
