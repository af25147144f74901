import { z } from 'zod'
import { ErrorAnswer, HookAnswer, PresenceAnswer, PublishAnswer, PublishBody, RoomName, RoomsAnswer } from './schemas.js'

export interface OpenApiOptions {
  /** where the API is mounted, e.g. `/api` */
  basePath: string
  /** the webhook sources configured (the `{source}` values that exist) */
  sources: readonly string[]
  bodyLimit: number
  rateLimit: { max: number, timeWindowMs: number } | false
  title?: string
  version?: string
}

type Json = Record<string, unknown>

function schema (type: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(type, { io, unrepresentable: 'any' }) as Json
  return rest
}

/**
 * The OpenAPI 3.1 description of the external API, built from the same zod schemas the routes validate with, so
 * another service can generate a client from it. Every route and every status it can answer is listed.
 */
export function buildOpenApi (options: OpenApiOptions): Json {
  const base = options.basePath === '/' ? '' : options.basePath
  const errorRef = { $ref: '#/components/schemas/Error' }
  const error = (status: number, description: string, extra: Json = {}) => ({
    [status]: { description, content: { 'application/json': { schema: errorRef } }, ...extra }
  })
  const retryAfter = {
    headers: { 'Retry-After': { description: 'seconds until the window resets', schema: { type: 'integer' } } }
  }
  const limited = options.rateLimit === false
    ? {}
    : error(429, `rate limited: more than ${options.rateLimit.max} requests in ${options.rateLimit.timeWindowMs} ms ` +
      'for this API key (for this client address without one)', retryAfter)
  const common = (auth: boolean) => ({
    ...(auth ? error(401, 'missing, malformed or unknown API key') : {}),
    ...limited,
    ...error(500, 'an unexpected failure (nothing was recorded: a retry is safe)')
  })
  const roomParam = {
    name: 'room', in: 'path', required: true, schema: { ...schema(RoomName), maxLength: 128 },
    description: 'the room name (percent-encode `:` and `@` or not, both work)'
  }
  const security = [{ bearer: [] }]

  const paths: Json = {
    [`${base}/rooms/{room}/events`]: {
      post: {
        operationId: 'publishEvent',
        summary: 'Publish an event to a room',
        description: 'The event reaches every member of the room on every transport (ws, sse, rtc) and is kept in ' +
          'the room history. With an Idempotency-Key, the first answer is stored for 24 h and replayed to a repeat ' +
          'of the same request without publishing again.',
        security,
        parameters: [roomParam, {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
          description: 'a unique key per logical request (a UUID); scoped to the API key'
        }],
        requestBody: {
          required: true,
          description: `at most ${options.bodyLimit} bytes`,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/PublishBody' } } }
        },
        responses: {
          202: {
            description: 'published',
            headers: {
              'Idempotency-Replayed': { description: '`true` when this is the stored answer of an earlier request', schema: { type: 'string', enum: ['true'] } }
            },
            content: { 'application/json': { schema: { $ref: '#/components/schemas/PublishAnswer' } } }
          },
          ...error(400, 'invalid room name, invalid body (every zod issue in `issues`), malformed JSON or Idempotency-Key'),
          ...error(403, 'the API key may not use this room'),
          ...error(409, 'a request with this Idempotency-Key is still running; retry later'),
          ...error(413, `the body is over ${options.bodyLimit} bytes`),
          ...error(415, 'the body is not application/json'),
          ...error(422, 'this Idempotency-Key was used for a different request'),
          ...error(503, 'the room bus (Redis) is unavailable: nothing was published; retry later'),
          ...common(true)
        }
      }
    },
    [`${base}/rooms/{room}`]: {
      get: {
        operationId: 'getPresence',
        summary: 'Presence of a room',
        security,
        parameters: [roomParam],
        responses: {
          200: { description: 'members and distinct users', content: { 'application/json': { schema: { $ref: '#/components/schemas/Presence' } } } },
          ...error(400, 'invalid room name'),
          ...error(403, 'the API key may not use this room'),
          ...common(true)
        }
      }
    },
    [`${base}/rooms`]: {
      get: {
        operationId: 'listRooms',
        summary: 'Rooms with members, and their member counts',
        security,
        responses: {
          200: { description: 'the rooms', content: { 'application/json': { schema: { $ref: '#/components/schemas/Rooms' } } } },
          ...common(true)
        }
      }
    },
    [`${base}/hooks/{source}`]: {
      post: {
        operationId: 'receiveWebhook',
        summary: 'Receive a Standard Webhooks delivery',
        description: 'Verified per https://www.standardwebhooks.com against the secrets of `source` (tolerance 300 s), ' +
          'deduplicated by webhook-id, handed to the host\'s handlers, then published as event `hook.<source>` to ' +
          'room `hooks:<source>` with the JSON body as data (a body that is not JSON is published as a string). ' +
          'No API key: the signature authenticates the sender.',
        security: [],
        parameters: [
          {
            name: 'source', in: 'path', required: true,
            schema: options.sources.length === 0 ? { type: 'string' } : { type: 'string', enum: [...options.sources] }
          },
          { name: 'webhook-id', in: 'header', required: true, schema: { type: 'string', maxLength: 256 } },
          { name: 'webhook-timestamp', in: 'header', required: true, schema: { type: 'string', pattern: '^\\d+$' }, description: 'seconds since the Unix epoch' },
          { name: 'webhook-signature', in: 'header', required: true, schema: { type: 'string' }, description: 'space-separated `v1,<base64>` signatures' }
        ],
        requestBody: {
          required: true,
          description: `the payload (JSON by the spec), at most ${options.bodyLimit} bytes`,
          content: { '*/*': { schema: {} } }
        },
        responses: {
          200: { description: 'handled (or already handled: `duplicate`)', content: { 'application/json': { schema: { $ref: '#/components/schemas/HookAnswer' } } } },
          ...error(401, 'missing headers, bad signature, or a timestamp more than 300 s old or ahead'),
          ...error(404, 'no secret is configured for this source'),
          ...error(409, 'this webhook-id is still being handled by another delivery; retry later'),
          ...error(413, `the body is over ${options.bodyLimit} bytes`),
          ...error(503, 'the dedupe store or the room bus (Redis) is unavailable: not handled; retry later'),
          ...common(false)
        }
      }
    },
    [`${base}/openapi.json`]: {
      get: {
        operationId: 'getOpenApi',
        summary: 'This document',
        security: [],
        responses: {
          200: { description: 'the OpenAPI 3.1 description of this API', content: { 'application/json': { schema: { type: 'object' } } } },
          ...limited
        }
      }
    }
  }

  return {
    openapi: '3.1.0',
    info: {
      title: options.title ?? 'fastify-gateways external API',
      version: options.version ?? '1.0.0',
      description: 'Publish to rooms, read presence and deliver signed webhooks. Errors answer ' +
        '`{"statusCode","code","error","message"}` (`code` is stable, e.g. `GW_INVALID_ROOM`).'
    },
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'an API key: `Authorization: Bearer <key>`' }
      },
      schemas: {
        PublishBody: schema(PublishBody, 'input'),
        PublishAnswer: schema(PublishAnswer),
        Presence: schema(PresenceAnswer),
        Rooms: schema(RoomsAnswer),
        HookAnswer: schema(HookAnswer),
        Error: schema(ErrorAnswer)
      }
    }
  }
}
