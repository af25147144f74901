import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { GatewayErrors } from '../lib/errors.js'
import type { WebhookVerifier } from '../lib/external/standard-webhooks.js'
import type { WebhookPipeline } from '../lib/webhooks/pipeline.js'
import type { ExternalHookHandler } from '../plugins/external.js'
import { rawBodies, settle, type WebhookRoute } from './webhooks.js'

export interface ExternalHooksRoutesOptions {
  rooms: RoomRegistry
  /** source → its verifier (its secrets) */
  verifiers: ReadonlyMap<string, WebhookVerifier>
  /** source → host handlers, in registration order (live: handlers added later count) */
  handlers: ReadonlyMap<string, ExternalHookHandler[]>
  pipeline: WebhookPipeline
  bodyLimit: number
}

interface SourceParams { source: string }

interface VerifiedHook {
  source: string
  webhookId: string
  timestamp: number
  payload: unknown
}

const HOOKS: WebhookRoute<VerifiedHook> = {
  label: 'webhook',
  refused: 'webhook refused',
  about: (hook) => ({ source: hook.source, webhookId: hook.webhookId }),
  errors: {
    handler: (hook) => new GatewayErrors.HOOK_HANDLER(JSON.stringify(hook.webhookId)),
    timeout: (hook, budgetMs) => new GatewayErrors.HOOK_TIMEOUT(JSON.stringify(hook.webhookId), String(budgetMs)),
    // the first delivery's handler failed while this one waited: not handled, the sender's retry runs it
    inFlight: (hook, result) => result === 'timeout'
      ? new GatewayErrors.HOOK_IN_PROGRESS(JSON.stringify(hook.webhookId))
      : new GatewayErrors.HOOK_HANDLER(JSON.stringify(hook.webhookId)),
    store: () => new GatewayErrors.STORE_UNAVAILABLE('the webhook dedupe store failed')
  }
}

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
 * `POST <base>/hooks/:source`: a Standard Webhooks receiver on the shared webhook pipeline. The body is read raw
 * (any content type; this parser is scoped to this route), verified against the source's secrets, deduplicated by
 * webhook-id, handed to the host's handlers and published as `hook.<source>` to `hooks:<source>`.
 */
export async function externalHooksRoutes (app: FastifyInstance, options: ExternalHooksRoutesOptions) {
  const { rooms, verifiers, handlers, pipeline } = options
  rawBodies(app, options.bodyLimit)

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
    const outcome = await pipeline.process((): VerifiedHook => {
      // Svix sends the same headers with an svix- prefix unless white-labelled
      const verified = verifier.verify({
        id: header(request, 'webhook-id') ?? header(request, 'svix-id'),
        timestamp: header(request, 'webhook-timestamp') ?? header(request, 'svix-timestamp'),
        signature: header(request, 'webhook-signature') ?? header(request, 'svix-signature')
      }, body)
      if (!verified.ok) {
        throw Object.assign(new GatewayErrors.HOOK_UNVERIFIED(verified.message), { reason: verified.reason, details: { source } })
      }
      return { source, webhookId: verified.id, timestamp: verified.timestamp, payload: decodePayload(body) }
    }, (hook) => ({
      key: `${source}:${hook.webhookId}`,
      handle: async (signal) => {
        const log = request.log.child({ source, webhookId: hook.webhookId })
        for (const handler of [...(handlers.get(source) ?? [])]) {
          if (signal.aborted) return
          await handler(hook.payload, { source, webhookId: hook.webhookId, timestamp: hook.timestamp, rawBody: body, request, log, signal })
        }
      },
      publish: async () => { await rooms.publish(`hooks:${source}`, `hook.${source}`, hook.payload) }
    }))
    const settled = settle(request, reply, outcome, HOOKS)
    if (settled.kind === 'sent') return reply
    return await reply.code(200).send(settled.duplicate ? { received: true, duplicate: true } : { received: true })
  })
}
