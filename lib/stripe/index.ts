export * from './types.js'
export {
  createStripeVerifier, signedTimestamp, signatureError, DEFAULT_TOLERANCE_S,
  type StripeVerifier, type StripeVerifierOptions, type SignatureProblem
} from './verify.js'
export { publishStripeEvent, stripeUserId, STRIPE_ROOM, type PublishLogger } from './publish.js'
