export interface LateResult {
  /** what the work that ran past its budget finally threw; undefined when it succeeded late */
  error?: unknown
}

export type BudgetResult<T> =
  | { kind: 'ok', value: T }
  | { kind: 'failed', error: unknown }
  /** `late` settles when the abandoned work finally ends (it cannot be stopped, only told through its signal) */
  | { kind: 'timeout', late: Promise<LateResult> }

/**
 * Runs `work` within `timeoutMs`. Past the budget the result is `timeout` at once and the signal handed to `work`
 * is aborted with `reason()`, so work that passes it on (fetch, SDK calls) stops and later steps can check it.
 */
export async function runWithBudget<T> (work: (signal: AbortSignal) => Promise<T>, timeoutMs: number,
  reason: () => Error): Promise<BudgetResult<T>> {
  const controller = new AbortController()
  const run = (async () => await work(controller.signal))()
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timeout') })
  try {
    const first = await Promise.race([run.then((value) => ({ value })), expired])
    if (first !== 'timeout') return { kind: 'ok', value: first.value }
    controller.abort(reason())
    return { kind: 'timeout', late: run.then(() => ({}), (error: unknown) => ({ error })) }
  } catch (error) {
    return { kind: 'failed', error }
  } finally {
    clearTimeout(timer)
  }
}
