import type Stripe from 'stripe'
import { GatewayErrors } from '../errors.js'
import type { StripeModule } from './types.js'

/** Stripe's default (docs/stripe.md): a signature further than this many seconds from now, either way, is refused. */
export const DEFAULT_TOLERANCE_S = 300

export interface StripeVerifierOptions {
  /** the `stripe` package's default export, loaded by the gateway (its static webhooks helper verifies) */
  stripe: StripeModule
  /** endpoint signing secrets (`whsec_...`); every one is tried, so old and new both pass while rotating */
  secrets: readonly string[]
  /** seconds a signed timestamp may be off from now, in either direction; default 300 */
  tolerance?: number
  /** the clock, ms since the Unix epoch (tests) */
  now?: () => number
}

export type SignatureProblem = 'missing' | 'multiple' | 'malformed' | 'mismatch' | 'stale' | 'future'

const REASONS: Record<SignatureProblem, string> = {
  missing: 'missing Stripe-Signature header',
  multiple: 'more than one Stripe-Signature header',
  malformed: 'malformed Stripe-Signature header',
  mismatch: 'no signature matches the payload',
  stale: 'signature timestamp outside the tolerance',
  future: 'signature timestamp outside the tolerance'
}

/** A refused delivery: 400 with a short reason that says nothing about the secrets. */
export function signatureError (problem: SignatureProblem) {
  const err = new GatewayErrors.STRIPE_SIGNATURE(REASONS[problem])
  return Object.assign(err, { problem, reason: problem })
}

export interface StripeVerifier {
  /** the verified event, or throws GW_STRIPE_SIGNATURE / GW_STRIPE_EVENT (both 400) */
  verify (rawBody: Buffer, header: string | string[] | undefined): Stripe.Event
}

/**
 * Verifies a webhook delivery with the official SDK's `Stripe.webhooks.constructEvent` (the static, webhooks-only
 * helper: no API key needed) against each configured secret in turn. The SDK checks only a signature's age; a
 * timestamp more than `tolerance` seconds in the future is refused here first (a clock that far ahead, or a
 * signature made to be replayed later). The errors carry a short reason and never the header, the payload or a
 * secret (the SDK's own error holds the header and payload, so it is not passed on).
 */
export function createStripeVerifier (options: StripeVerifierOptions): StripeVerifier {
  const Stripe = options.stripe
  const secrets = [...options.secrets]
  if (secrets.length === 0) throw new GatewayErrors.INVALID_OPTIONS('fastify-gateways/stripe', 'webhookSecret: at least one secret is needed')
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE_S
  const now = options.now ?? Date.now
  return {
    verify (rawBody, header) {
      if (Array.isArray(header)) throw signatureError(header.length === 0 ? 'missing' : 'multiple')
      if (header === undefined || header.trim() === '') throw signatureError('missing')
      const timestamp = signedTimestamp(header)
      if (timestamp === null) throw signatureError('malformed')
      const receivedAt = now()
      if (timestamp - Math.floor(receivedAt / 1000) > tolerance) throw signatureError('future')
      let event: Stripe.Event | undefined
      for (const secret of secrets) {
        try {
          event = Stripe.webhooks.constructEvent(rawBody, header, secret, tolerance, undefined, receivedAt)
          break
        } catch (err) {
          // a signature error means "not this secret" (or stale): try the next one. Anything else came after the
          // signature matched: the SDK could not parse the payload as a (snapshot) event.
          if (err instanceof Stripe.errors.StripeSignatureVerificationError) continue
          throw new GatewayErrors.STRIPE_EVENT(err instanceof SyntaxError ? 'the body is not JSON' : 'not a snapshot event')
        }
      }
      if (event === undefined) {
        // Stripe checks the signature before the age; classifying by our own reading of `t=` keeps us independent
        // of the SDK's message texts. A stale timestamp is reported as such whatever the signature.
        throw signatureError(Math.floor(receivedAt / 1000) - timestamp > tolerance ? 'stale' : 'mismatch')
      }
      return checkEvent(event)
    }
  }
}

/** The `t=` of a Stripe-Signature header when it also carries at least one `v1=` signature; else null. */
export function signedTimestamp (header: string): number | null {
  let timestamp: number | null = null
  let signatures = 0
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const key = part.slice(0, eq)
    const value = part.slice(eq + 1)
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value)
    else if (key === 'v1' && value.length > 0) signatures++
  }
  return signatures > 0 ? timestamp : null
}

function checkEvent (event: Stripe.Event): Stripe.Event {
  const value = event as unknown as Record<string, unknown> | null
  const data = value?.data as Record<string, unknown> | undefined
  if (
    typeof value !== 'object' || value === null ||
    typeof value.id !== 'string' || value.id.length === 0 || value.id.length > 255 ||
    typeof value.type !== 'string' || value.type.length === 0 ||
    typeof data !== 'object' || data === null || typeof data.object !== 'object' || data.object === null
  ) {
    throw new GatewayErrors.STRIPE_EVENT('expected an object with id, type and data.object')
  }
  return event
}
