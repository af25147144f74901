export {
  WebhookPipeline, DEFAULT_DEDUPE_TTL_MS, DEFAULT_HANDLER_TIMEOUT_MS,
  type WebhookPipelineOptions, type WebhookCounters, type Delivery, type DeliveryOutcome, type PipelineOutcome
} from './pipeline.js'
export { runWithBudget, type BudgetResult, type LateResult } from './budget.js'
export { handlersFor, CATCH_ALL } from './dispatch.js'
export { parseForm, isForm, type FormFields } from './form.js'
export { normalizePublicUrl, publicUrlOption } from './public-url.js'
