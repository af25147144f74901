import type { FastifyInstance } from 'fastify'

export interface HealthRoutesOptions {
  /** dependency name → whether it is connected; `/ready` lists the failing ones */
  checks: Record<string, () => boolean>
}

/** `GET /health` (the process serves) and `GET /ready` (every enabled dependency is connected). */
export async function healthRoutes (app: FastifyInstance, { checks }: HealthRoutesOptions) {
  const noStore = 'no-store'
  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', noStore)
    return { status: 'ok' }
  })
  app.get('/ready', async (_request, reply) => {
    reply.header('cache-control', noStore)
    const failing = Object.entries(checks).filter(([, ok]) => !safe(ok)).map(([name]) => name)
    if (failing.length === 0) return { status: 'ok' }
    return reply.code(503).send({ status: 'unavailable', failing })
  })
}

function safe (check: () => boolean): boolean {
  try {
    return check()
  } catch {
    return false
  }
}
