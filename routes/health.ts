import type { FastifyInstance } from 'fastify'
import { Readiness, type ReadinessCheck } from '../lib/health/readiness.js'

export interface HealthRoutesOptions {
  /** dependency name → whether it is connected; `/ready` lists the failing ones (besides those of `readiness`) */
  checks?: Record<string, ReadinessCheck>
  /** the app's readiness checks (`app.readiness`), asked on every `/ready` */
  readiness?: Readiness
  healthPath?: string
  readyPath?: string
  /** a check slower than this fails; default 2000 */
  timeoutMs?: number
}

/**
 * `GET /health`: 200 `{"status":"ok"}` while the process serves. `GET /ready`: 200 `{"status":"ok"}` when every
 * check passes, else 503 `{"status":"unavailable","failing":[names]}` (docs/operations.md).
 */
export async function healthRoutes (app: FastifyInstance, options: HealthRoutesOptions) {
  const readiness = options.readiness ?? new Readiness()
  const checks = options.checks ?? {}
  const timeoutMs = options.timeoutMs ?? 2000
  const noStore = 'no-store'
  app.get(options.healthPath ?? '/health', { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('cache-control', noStore)
    return { status: 'ok' }
  })
  app.get(options.readyPath ?? '/ready', { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('cache-control', noStore)
    const { ready, failing } = await readiness.evaluate(timeoutMs, checks)
    if (ready) return { status: 'ok' }
    return reply.code(503).send({ status: 'unavailable', failing })
  })
}
