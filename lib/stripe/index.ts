export * from './types.js'
export {
  createStripeVerifier, signedTimestamp, signatureError, DEFAULT_TOLERANCE_S,
  type StripeVerifier, type StripeVerifierOptions, type SignatureProblem
} from './verify.js'
export { dispatchWithBudget, handlersFor, type DispatchResult, type LateResult } from './dispatch.js'
export {
  StripeEventProcessor, DEFAULT_DEDUPE_TTL_MS, DEFAULT_HANDLER_TIMEOUT_MS,
  type StripeProcessorOptions, type ProcessOutcome
} from './process.js'
export { publishStripeEvent, stripeUserId, STRIPE_ROOM, type PublishLogger } from './publish.js'
