import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type {} from './rooms.js'
import { intOption, isFunction, parseOptions, pathOption } from '../lib/options.js'
import { Readiness, type ReadinessCheck } from '../lib/health/readiness.js'
import { healthRoutes } from '../routes/health.js'

export { Readiness, type ReadinessCheck, type ReadinessResult } from '../lib/health/readiness.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** readiness checks of the app's dependencies, asked by `/ready` (fastify-gateways/health) */
    readiness: Readiness
  }
}

const PLUGIN = 'fastify-gateways/health'

const HealthOptions = z.strictObject({
  healthPath: pathOption.default('/health'),
  readyPath: pathOption.default('/ready'),
  /** more checks by name, besides those the gateways add */
  checks: z.record(z.string().min(1), z.custom<ReadinessCheck>(isFunction, { error: 'must be a function () => boolean' })).default({}),
  /** a check slower than this fails */
  timeoutMs: intOption(1, 60_000, 2000),
  /**
   * the room bus as a dependency, named after it (`redis`) when it spans instances: ready while it takes publishes.
   * false: leave it out
   */
  bus: z.boolean().default(true)
})

export type HealthOptions = z.input<typeof HealthOptions>

/**
 * `app.readiness`, created in the host's scope unless some plugin already did, so every gateway can add its check
 * whatever the order of registration. Call from a plugin's outer (fastify-plugin) function.
 *
 *   ensureReadiness(app).add('kafka', () => app.kafka.isReady())
 */
export function ensureReadiness (app: FastifyInstance): Readiness {
  if (!app.hasDecorator('readiness')) app.decorate('readiness', new Readiness())
  return app.readiness
}

/**
 * `GET /health` and `GET /ready` for library users (docs/operations.md): `/ready` asks every check the gateways
 * added to `app.readiness` (kafka, mqtt, nats, redis-streams...), the room bus when it is a shared one (Redis), and
 * the `checks` given here.
 */
async function healthPlugin (app: FastifyInstance, raw: HealthOptions) {
  const options = parseOptions(PLUGIN, HealthOptions, raw)
  const readiness = ensureReadiness(app)
  if (options.bus) {
    // once every plugin is in: the rooms plugin may come after this one
    app.addHook('onReady', async () => {
      if (!app.hasDecorator('rooms') || app.rooms.bus.name === 'memory') return
      const registry = app.rooms
      readiness.add(registry.bus.name, () => registry.isReady())
    })
  }
  await app.register(healthRoutes, {
    healthPath: options.healthPath,
    readyPath: options.readyPath,
    timeoutMs: options.timeoutMs,
    readiness,
    checks: options.checks
  })
}

export const health = fp(healthPlugin, { fastify: '5.x', name: PLUGIN })
export default health
