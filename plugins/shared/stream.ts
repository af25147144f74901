import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { ensureRooms } from '../rooms.js'
import { ensureReadiness } from '../health.js'
import { GatewayErrors } from '../../lib/errors.js'
import { StreamProcessor, type Delivery, type Failure, type ProcessorOptions } from '../../lib/streams/processor.js'
import { createStreamApi, type StreamApi } from '../../lib/streams/api.js'

/** What the shared wiring needs of a broker's connection lifecycle (lib/<broker>/lifecycle.ts). */
export interface StreamLifecycle {
  isReady (): boolean
  stop (): Promise<void>
}

export interface StreamGatewaySpec<F extends object, EmitOptions, EmitResult, R, L extends StreamLifecycle> {
  /** the broker's name: logs, counters, readiness, errors */
  broker: 'mqtt' | 'nats' | 'redis-streams'
  /** what a target is called in errors: 'mqtt topic', 'nats subject', 'redis stream key' */
  targetNoun: string
  /** the parsed options every stream gateway has (lib/streams/options.ts) */
  options: { decorator: string, retries: number, retryBackoffMs: number, bridge: ReadonlyArray<{ topic: string, template: string }> }
  syntax: ProcessorOptions<F, R>['syntax']
  mode: ProcessorOptions<F, R>['mode']
  targetProblem: (target: string) => string | null
  /** the STREAM_UNAVAILABLE reason of an emit before the app is ready */
  notStarted: string
  /** writes a dead letter through the running lifecycle */
  deadLetter: (lifecycle: L, delivery: Delivery<F, R>, failure: Failure, destination: string) => Promise<unknown>
  /** an emit, validated; `started()` is the running lifecycle (or throws STREAM_UNAVAILABLE) */
  emit: (target: string, value: unknown, options: EmitOptions, started: () => L) => Promise<EmitResult>
  /** creates and starts the lifecycle when the app is ready */
  start: (processor: StreamProcessor<F, R>, log: FastifyBaseLogger) => L
}

/**
 * What the mqtt, nats and redis-streams gateways share: the processor over `app.rooms` (retries, dead letters,
 * bridge rules, counters), the decorator with `on`/`bridge` closed once the app is ready, the readiness check, and
 * the lifecycle started at `onReady` and stopped at `onClose`.
 */
export async function wireStreamGateway<F extends object, EmitOptions, EmitResult, R, L extends StreamLifecycle> (
  app: FastifyInstance,
  spec: StreamGatewaySpec<F, EmitOptions, EmitResult, R, L>
): Promise<StreamApi<F, EmitOptions, EmitResult>> {
  const { broker, options } = spec
  const rooms = await ensureRooms(app)
  const log = app.log.child({ gateway: broker })
  let lifecycle: L | null = null
  const started = (): L => {
    if (lifecycle === null) throw new GatewayErrors.STREAM_UNAVAILABLE(broker, spec.notStarted)
    return lifecycle
  }

  const processor = new StreamProcessor<F, R>({
    broker,
    syntax: spec.syntax,
    mode: spec.mode,
    retries: options.retries,
    retryBackoffMs: options.retryBackoffMs,
    publish: (room, event, data) => rooms.publish(room, event, data),
    // the processor runs only once the lifecycle has started it
    deadLetter: async (delivery, failure, destination) => await spec.deadLetter(started(), delivery, failure, destination),
    log,
    count: (outcome) => { rooms.counters.streamMessage(broker, outcome) }
  })
  for (const rule of options.bridge) processor.bridge(rule.topic, rule.template)

  const { api, freeze } = createStreamApi<F, EmitOptions, EmitResult, R>({
    decorator: options.decorator,
    processor,
    tooLate: (method) => new GatewayErrors.STREAM_TOO_LATE(options.decorator, method),
    invalid: (target, problem) => new GatewayErrors.STREAM_INVALID(spec.targetNoun, target, problem),
    targetProblem: spec.targetProblem,
    emit: async (target, value, emitOptions) => await spec.emit(target, value, emitOptions, started),
    isReady: () => lifecycle?.isReady() ?? false
  })
  app.decorate(options.decorator, api)
  ensureReadiness(app).add(broker, api.isReady)

  app.addHook('onReady', async function startStreamGateway () {
    freeze()
    lifecycle = spec.start(processor, log)
  })
  app.addHook('onClose', async function stopStreamGateway () {
    freeze()
    await lifecycle?.stop()
  })
  return api
}
