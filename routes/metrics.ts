import type { FastifyInstance } from 'fastify'
import { SecretMatcher } from '../lib/auth/secret.js'
import { GatewayErrors } from '../lib/errors.js'

export interface MetricsRoutesOptions {
  path: string
  /** Bearer token the scraper must send; undefined: open */
  token: string | undefined
  metrics: { text (): Promise<string>, readonly contentType: string }
}

/** `GET <path>`: the Prometheus exposition; with a token, 401 unless `Authorization: Bearer <token>`. */
export async function metricsRoutes (app: FastifyInstance, options: MetricsRoutesOptions) {
  const token = options.token === undefined ? null : new SecretMatcher(options.token)
  app.get(options.path, { logLevel: 'warn' }, async function metricsExposition (request, reply) {
    if (token !== null) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
      if (!token.matches(match?.[1])) {
        reply.header('www-authenticate', 'Bearer realm="metrics"')
        throw new GatewayErrors.METRICS_UNAUTHORIZED(match === null ? 'send Authorization: Bearer <token>' : 'invalid token')
      }
    }
    const body = await options.metrics.text()
    return reply.header('cache-control', 'no-store').type(options.metrics.contentType).send(body)
  })
}
