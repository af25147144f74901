import type { FastifyInstance } from 'fastify'

export interface ExternalOpenApiRoutesOptions {
  /** the OpenAPI document, built once */
  document: Record<string, unknown>
}

/** `GET <base>/openapi.json`: the OpenAPI 3.1 description of the external API (no key needed). */
export async function externalOpenApiRoutes (app: FastifyInstance, { document }: ExternalOpenApiRoutesOptions) {
  const body = JSON.stringify(document)
  app.get('/openapi.json', async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    reply.type('application/json; charset=utf-8')
    return body
  })
}
