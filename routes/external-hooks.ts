import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import type { DedupeStore } from '../lib/stores/dedupe.js'
import { GatewayErrors } from '../lib/errors.js'
import type { WebhookVerifier } from '../lib/external/standard-webhooks.js'
import { runOnce } from '../lib/external/once.js'
import type { ExternalHookHandler } from '../plugins/external.js'

export interface ExternalHooksRoutesOptions {
  rooms: RoomRegistry
  /** source → its verifier (its secrets) */
  verifiers: ReadonlyMap<string, WebhookVerifier>
  /** source → host handlers, in registration order (live: handlers added later count) */
  handlers: ReadonlyMap<string, ExternalHookHandler[]>
  store: DedupeStore
  bodyLimit: number
  dedupeTtlMs: number
  waitMs: number
}

interface SourceParams { source: string }

// A claim outlives a slow handler; a crashed instance frees the id after it.
const LEASE_MS = 60_000

// Node joins repeated headers of these names into one string (only set-cookie stays an array)
function header (request: FastifyRequest, name: string): string | undefined {
  return request.headers[name] as string | undefined
}

/** The payload members receive: the JSON body, or the body as text when it is not JSON, or null when empty. */
export function decodePayload (body: Buffer): unknown {
  if (body.length === 0) return null
  const text = body.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * `POST <base>/hooks/:source`: a Standard Webhooks receiver. The body is read raw (any content type; this parser
 * is scoped to this route), verified against the source's secrets, deduplicated by webhook-id, handed to the host's
 * handlers and published as `hook.<source>` to `hooks:<source>`.
 */
export async function externalHooksRoutes (app: FastifyInstance, options: ExternalHooksRoutesOptions) {
  const { rooms, verifiers, handlers, store } = options

  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

  app.post<{ Params: SourceParams }>('/hooks/:source', {
    bodyLimit: options.bodyLimit,
    // after the rate limiter (onRequest), before the body is read
    preParsing: async (request: FastifyRequest<{ Params: SourceParams }>) => {
      if (!verifiers.has(request.params.source)) throw new GatewayErrors.HOOK_UNKNOWN_SOURCE(JSON.stringify(request.params.source))
    }
  }, async (request, reply) => {
    const source = request.params.source
    const verifier = verifiers.get(source) as WebhookVerifier
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    // Svix sends the same headers with an svix- prefix unless white-labelled
    const verified = verifier.verify({
      id: header(request, 'webhook-id') ?? header(request, 'svix-id'),
      timestamp: header(request, 'webhook-timestamp') ?? header(request, 'svix-timestamp'),
      signature: header(request, 'webhook-signature') ?? header(request, 'svix-signature')
    }, body)
    if (!verified.ok) {
      request.log.warn({ source, reason: verified.reason }, 'webhook refused')
      throw new GatewayErrors.HOOK_UNVERIFIED(verified.message)
    }
    const webhookId = verified.id
    const log = request.log.child({ source, webhookId })
    const payload = decodePayload(body)
    const outcome = await runOnce(store, `${source}:${webhookId}`, { leaseMs: LEASE_MS, ttlMs: options.dedupeTtlMs, waitMs: options.waitMs }, async () => {
      for (const handler of [...(handlers.get(source) ?? [])]) {
        try {
          await handler(payload, { source, webhookId, timestamp: verified.timestamp, rawBody: body, request, log })
        } catch (err) {
          log.error({ err }, 'webhook handler failed')
          throw new GatewayErrors.HOOK_HANDLER(JSON.stringify(webhookId))
        }
      }
      const published = await rooms.publish(`hooks:${source}`, `hook.${source}`, payload)
      return JSON.stringify({ id: published.id })
    })
    if (outcome.kind === 'busy') throw new GatewayErrors.HOOK_IN_PROGRESS(JSON.stringify(webhookId))
    if (outcome.kind === 'done') {
      log.info('duplicate webhook: already handled')
      return await reply.code(200).send({ received: true, duplicate: true })
    }
    log.info('webhook handled')
    return await reply.code(200).send({ received: true })
  })
}
