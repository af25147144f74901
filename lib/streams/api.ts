import type { StreamHandler, StreamProcessor } from './processor.js'

/** A zod schema, as `on()` takes it (any zod 4 schema fits; its output is what the handler gets). */
export interface OnSchema<T> {
  safeParse (value: unknown): { success: true, data: T } | { success: false, error: { issues: ReadonlyArray<{ path: PropertyKey[], message: string }> } }
}

export interface StreamOnOptions<T> {
  /** a zod schema: the handler gets its parsed output; a value that fails it goes straight to the dead letters */
  schema?: OnSchema<T>
}

/** The code API every stream gateway decorates the app with (`app.kafka`, `app.mqtt`, `app.nats`, `app.redisStreams`). */
export interface StreamApi<F extends object, EmitOptions, EmitResult> {
  /**
   * Calls `handler` for every message matching `pattern` (a topic, filter, subject or stream key in the broker's own
   * syntax) or the RegExp. Must be called before the app is ready. A handler that throws is retried with backoff, then
   * the message is dead-lettered.
   */
  on<T = unknown> (pattern: string | RegExp, handler: StreamHandler<T, F>, options?: StreamOnOptions<T>): void
  /** Publishes each message matching `pattern` to the room `roomTemplate` makes of it (event name: its actual topic, subject or key). */
  bridge (pattern: string, roomTemplate: string): void
  /** Writes `value` as JSON; resolves once the broker has it. Rejects with a 503 error while the broker is unreachable. */
  emit (target: string, value: unknown, options?: EmitOptions): Promise<EmitResult>
  /** True while connected and consuming. */
  isReady (): boolean
}

export interface StreamApiOptions<F extends object, EmitOptions, EmitResult, R = unknown> {
  /** the decorator's name, for messages (`app.<name>.on`) */
  decorator: string
  processor: StreamProcessor<F, R>
  /** the error for on/bridge after the app is ready */
  tooLate: (method: string) => Error
  /** the error for a pattern or target the broker cannot take */
  invalid: (target: string, problem: string) => Error
  /** why `target` cannot be written to, or null */
  targetProblem: (target: string) => string | null
  emit: (target: string, value: unknown, options: EmitOptions) => Promise<EmitResult>
  isReady: () => boolean
}

/** Builds the decorator; `freeze()` (at `onReady`) closes `on`/`bridge`. */
export function createStreamApi<F extends object, EmitOptions, EmitResult, R = unknown> (options: StreamApiOptions<F, EmitOptions, EmitResult, R>) {
  const { processor, decorator } = options
  let frozen = false
  const checkPattern = (pattern: unknown) => {
    const problem = typeof pattern === 'string' ? processor.syntax.problem(pattern) : `must be a ${processor.syntax.noun}`
    if (problem !== null) throw options.invalid(JSON.stringify(pattern), problem)
  }
  const api: StreamApi<F, EmitOptions, EmitResult> = {
    on (pattern, handler, onOptions = {}) {
      if (frozen) throw options.tooLate('on')
      if (!(pattern instanceof RegExp)) checkPattern(pattern)
      if (typeof handler !== 'function') throw new TypeError(`app.${decorator}.on: handler must be a function`)
      const schema = onOptions.schema
      if (schema !== undefined && typeof schema?.safeParse !== 'function') throw new TypeError(`app.${decorator}.on: schema must be a zod schema`)
      processor.on(pattern, handler as StreamHandler<never, F>, schema)
    },
    bridge (pattern, roomTemplate) {
      if (frozen) throw options.tooLate('bridge')
      checkPattern(pattern)
      // throws a TypeError naming the problem with the template
      processor.bridge(pattern, roomTemplate)
    },
    async emit (target, value, emitOptions) {
      const problem = typeof target === 'string' ? options.targetProblem(target) : 'must be a string'
      if (problem !== null) throw options.invalid(JSON.stringify(target), problem)
      return await options.emit(target, value, emitOptions ?? ({} as EmitOptions))
    },
    isReady: () => options.isReady()
  }
  return { api, freeze: () => { frozen = true } }
}
