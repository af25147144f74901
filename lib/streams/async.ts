/** Resolves true after `ms`, false at once (or as soon as) `signal` aborts. */
export function sleep (ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** True when `promise` settles before `deadline` (ms since the epoch). */
export function settlesBy (promise: Promise<unknown>, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, Math.max(0, deadline - Date.now()))
    const done = () => {
      clearTimeout(timer)
      resolve(true)
    }
    promise.then(done, done)
  })
}

/** `initial`, doubled per failure, at most `max`. */
export function backoffDelay (initial: number, max: number, failures: number): number {
  return Math.min(max, initial * 2 ** Math.min(failures, 30))
}

export interface RestartLoopOptions {
  /** stops the loop (between rounds, and during the wait) */
  signal: AbortSignal
  /** wait after a failed round; doubles per failure in a row up to `backoffMaxMs` */
  backoffMs: number
  backoffMaxMs: number
  /**
   * One round: connect, consume until the connection fails or `signal` aborts. Resolves true when it got going (the
   * consumer joined, subscribed...), which starts the backoff over; a rejection counts as a failure that got nowhere.
   */
  round: () => Promise<boolean>
  /** told about each rejected round (not called once `signal` aborted) */
  onError: (err: unknown, failures: number) => void
}

/**
 * Runs `round` again and again until `signal` aborts: the supervision every stream gateway needs (start in the
 * background, restart after a crash or a lost connection, back off while the broker stays away).
 */
export async function restartLoop (options: RestartLoopOptions): Promise<void> {
  const { signal } = options
  let failures = 0
  while (!signal.aborted) {
    let progressed = false
    try {
      progressed = await options.round()
    } catch (err) {
      if (signal.aborted) break
      options.onError(err, failures + 1)
    }
    if (signal.aborted) break
    if (progressed) failures = 0
    const delay = backoffDelay(options.backoffMs, options.backoffMaxMs, failures)
    failures++
    await sleep(delay, signal)
  }
}

interface Beat {
  readonly beat: () => unknown
  due: number
}

/** the beats of each interval, and the one timer that serves them */
const beats = new Map<number, { set: Set<Beat>, timer: NodeJS.Timeout }>()

/**
 * Calls `beat` about every `intervalMs` (the first after `intervalMs` to 1.5 times that) until the returned function
 * is called: a long handler keeping its lease. The beats of one interval share one timer, which ticks every half
 * interval and stops at the first tick with nothing to beat, so a gateway handling message after message sets up
 * no timer per message (one was measurable in bench/streams.ts's profiles).
 */
export function keepAlive (intervalMs: number, beat: () => unknown): () => void {
  const entry: Beat = { beat, due: Date.now() + intervalMs }
  let group = beats.get(intervalMs)
  if (group === undefined) {
    const set = new Set<Beat>()
    const timer = setInterval(() => {
      if (set.size === 0) {
        clearInterval(timer)
        beats.delete(intervalMs)
        return
      }
      const now = Date.now()
      for (const one of set) {
        if (now < one.due) continue
        one.due = now + intervalMs
        try {
          Promise.resolve(one.beat()).catch(() => {})
        } catch {}
      }
    }, Math.max(1, Math.floor(intervalMs / 2)))
    timer.unref()
    group = { set, timer }
    beats.set(intervalMs, group)
  }
  const { set } = group
  set.add(entry)
  return () => { set.delete(entry) }
}

export function errorText (err: unknown): string {
  if (err instanceof Error) return err.message || err.name
  return String(err)
}
