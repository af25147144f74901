import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { parseOptions } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'

/**
 * The browser client and the live demo page (`GET /` and `GET /client.js`; docs/client.md).
 *
 *   await app.register(demoRoutes)                                   // after the gateways, in any scope
 *   await app.register(demoRoutes, { endpoints: { sse: false } })    // the page says SSE is off instead of failing
 *
 * The five files are read once at register time and served from memory with a strong ETag (a hash of the bytes),
 * `If-None-Match` answered with 304, `Cache-Control` (the page: `no-cache`, revalidated each time; the assets:
 * `public, max-age=<assetMaxAgeS>`), `X-Content-Type-Options: nosniff`, and on the page a strict
 * Content-Security-Policy (no inline script or style anywhere in these files). An encapsulated plugin: `prefix` works.
 *
 * What the page learns from the server goes into `<body data-*>`: one attribute per endpoint (empty when that
 * gateway is off) and `data-publish` (the CLIENT_PUBLISH_ROOMS globs, when given). A page section marked
 * `data-requires="<endpoint>"` is shown only when that endpoint is on: a gateway adds its optional block to the page
 * with an endpoint here (default false), a `<section data-requires=...>` in index.html and its code in demo.js.
 */

export const DEFAULT_CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "style-src 'self'",
  "script-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

const endpoint = z.union([z.string().regex(/^(\/|https?:\/\/|wss?:\/\/)\S*$/, { error: 'must be a path or URL' }), z.literal(false)])

const DemoOptionsSchema = z.strictObject({
  /** directory holding client.js, client.d.ts, index.html, demo.js, demo.css; default: the package's public/ */
  root: z.string().min(1).optional(),
  /** the page's Content-Security-Policy; false: none */
  csp: z.union([z.string().min(1), z.literal(false)]).default(DEFAULT_CSP),
  /** max-age of the scripts and styles (the page itself is always revalidated) */
  assetMaxAgeS: z.number().int().min(0).max(31_536_000).default(300),
  /** where the page finds each gateway; false: that gateway is not enabled and the page says so */
  endpoints: z.strictObject({
    ws: endpoint.default('/ws'),
    sse: endpoint.default('/sse'),
    rtc: endpoint.default('/rtc'),
    api: endpoint.default('/api'),
    /** the sslcommerz demo checkout (`/demo/sslcommerz`, sandbox only): the page's "Pay with SSLCommerz" block */
    sslcommerz: endpoint.default(false)
  }).default({ ws: '/ws', sse: '/sse', rtc: '/rtc', api: '/api', sslcommerz: false }),
  /**
   * the globs of rooms browsers may publish to (CLIENT_PUBLISH_ROOMS), so the page can say so (and says hello to
   * other tabs only where it may); unset: the page is not told and simply tries
   */
  publishRooms: z.array(z.string().min(1).max(256)).max(100).optional()
})

export type DemoRoutesOptions = z.input<typeof DemoOptionsSchema>

interface Asset {
  body: Buffer
  type: string
  etag: string
  cacheControl: string
  csp: string | null
}

const FILES: Array<{ route: string, file: string, type: string }> = [
  { route: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { route: '/client.js', file: 'client.js', type: 'text/javascript; charset=utf-8' },
  { route: '/client.d.ts', file: 'client.d.ts', type: 'application/typescript; charset=utf-8' },
  { route: '/demo.js', file: 'demo.js', type: 'text/javascript; charset=utf-8' },
  { route: '/demo.css', file: 'demo.css', type: 'text/css; charset=utf-8' }
]

/** public/ next to this module: `routes/` in the sources, `dist/routes/` once built. */
export function defaultPublicRoot (): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const candidates = [resolve(here, '..', 'public'), resolve(here, '..', '..', 'public')]
  return candidates.find((dir) => existsSync(join(dir, 'client.js'))) ?? candidates[0]
}

export async function demoRoutes (app: FastifyInstance, raw: DemoRoutesOptions) {
  const options = parseOptions('fastify-gateways/demo', DemoOptionsSchema, raw)
  const root = options.root ?? defaultPublicRoot()
  const assetCache = `public, max-age=${options.assetMaxAgeS}`

  for (const { route, file, type } of FILES) {
    let body: Buffer
    try {
      body = readFileSync(join(root, file))
    } catch (err) {
      throw new GatewayErrors.INVALID_OPTIONS('fastify-gateways/demo', `root: cannot read ${file} in ${root} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
    }
    const page = file === 'index.html'
    if (page) body = Buffer.from(withPageData(body.toString('utf8'), options.endpoints, options.publishRooms), 'utf8')
    const asset: Asset = {
      body,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      cacheControl: page ? 'no-cache' : assetCache,
      csp: page && options.csp !== false ? options.csp : null
    }
    app.get(route, async (request, reply) => send(request, reply, asset))
  }
}

function send (request: FastifyRequest, reply: FastifyReply, asset: Asset) {
  reply.header('etag', asset.etag)
  reply.header('cache-control', asset.cacheControl)
  reply.header('x-content-type-options', 'nosniff')
  if (asset.csp !== null) {
    reply.header('content-security-policy', asset.csp)
    reply.header('referrer-policy', 'no-referrer')
  }
  if (matches(request.headers['if-none-match'], asset.etag)) return reply.code(304).send()
  return reply.type(asset.type).send(asset.body)
}

/** `If-None-Match` against a strong ETag: a list, `W/` prefixes compared weakly, `*` matches. */
function matches (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some((value) => {
    const tag = value.trim()
    return tag === '*' || tag === etag || tag === `W/${etag}`
  })
}

/** The page with the server's data on `<body>`: each endpoint (empty when off) and the publish globs. */
function withPageData (html: string, endpoints: Record<string, string | false>, publishRooms: string[] | undefined): string {
  const attributes = Object.entries(endpoints).map(([name, value]) => ` data-${name}="${value === false ? '' : escapeAttribute(value)}"`)
  if (publishRooms !== undefined) attributes.push(` data-publish="${escapeAttribute(publishRooms.join(','))}"`)
  return html.replace(/<body\b[^>]*>/, () => `<body${attributes.join('')}>`)
}

function escapeAttribute (value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export default demoRoutes
