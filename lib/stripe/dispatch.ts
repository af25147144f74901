import type Stripe from 'stripe'
import { GatewayErrors } from '../errors.js'
import { CATCH_ALL, type StripeEventHandler, type StripeEventHandlers } from './types.js'

/** The handlers one event runs, in order: the one for its type, then the catch-all. */
export function handlersFor<C> (handlers: StripeEventHandlers<C>, type: string): Array<StripeEventHandler<Stripe.Event, C>> {
  const table = handlers as Record<string, StripeEventHandler<Stripe.Event, C> | undefined>
  const out: Array<StripeEventHandler<Stripe.Event, C>> = []
  if (type !== CATCH_ALL) {
    const typed = Object.hasOwn(table, type) ? table[type] : undefined
    if (typed !== undefined) out.push(typed)
  }
  const all = table[CATCH_ALL]
  if (all !== undefined) out.push(all)
  return out
}

export interface LateResult {
  /** what the handler that ran past its budget finally threw; undefined when it succeeded late */
  error?: unknown
}

export type DispatchResult =
  | { kind: 'ok' }
  | { kind: 'failed', error: unknown }
  /** `late` settles when the abandoned handlers finally end (a handler cannot be stopped, only told via `signal`) */
  | { kind: 'timeout', late: Promise<LateResult> }

/**
 * Runs the handlers of `event` one after the other within `timeoutMs`. Past the budget the result is `timeout` at
 * once and the signal given to `makeContext` is aborted, so handlers that pass it on (fetch, Stripe requests) stop.
 */
export async function dispatchWithBudget<C> (
  handlers: StripeEventHandlers<C>,
  event: Stripe.Event,
  makeContext: (signal: AbortSignal) => C,
  timeoutMs: number
): Promise<DispatchResult> {
  const fns = handlersFor(handlers, event.type)
  if (fns.length === 0) return { kind: 'ok' }
  const controller = new AbortController()
  const run = (async () => {
    const ctx = makeContext(controller.signal)
    for (const fn of fns) {
      if (controller.signal.aborted) return
      await fn(event, ctx)
    }
  })()
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timeout') })
  try {
    const first = await Promise.race([run.then(() => 'ok' as const), expired])
    if (first === 'ok') return { kind: 'ok' }
    controller.abort(new GatewayErrors.STRIPE_TIMEOUT(event.type, String(timeoutMs)))
    return { kind: 'timeout', late: run.then(() => ({}), (error: unknown) => ({ error })) }
  } catch (error) {
    return { kind: 'failed', error }
  } finally {
    clearTimeout(timer)
  }
}
