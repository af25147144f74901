import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { GatewayErrors } from '../lib/errors.js'
import { formatIssues } from '../lib/options.js'
import { createOriginPolicy } from '../lib/admission/origin.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { LoginBody, type AdminSession } from '../lib/admin/api.js'
import { readCookie, sessionCookie } from '../lib/admin/cookie.js'
import { csrfMatches, type AdminSessionRecord, type SessionStore } from '../lib/admin/sessions.js'
import type { CountersSampler } from '../lib/admin/sampler.js'
import { adminApiRoutes } from './admin-api.js'

export interface AdminAssets {
  page: Buffer
  login: Buffer
  script: Buffer
  style: Buffer
}

export interface AdminRoutesOptions {
  /** the dashboard's path (the prefix this plugin is registered with) */
  base: string
  registry: RoomRegistry
  sessions: SessionStore
  sampler: CountersSampler
  verify: (password: string) => boolean | Promise<boolean>
  assets: AdminAssets
  sessionTtlMs: number
  secureCookie: boolean | 'auto'
  loginRateLimit: { max: number, timeWindowMs: number }
  refreshMs: number
  bodyLimit: number
}

/** The admin session cookie. */
export const SESSION_COOKIE = 'gw_admin'

/** The pages' Content-Security-Policy: scripts, styles and requests from this origin only, nothing inline. */
export const ADMIN_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'"
].join('; ')

const HTML = 'text/html; charset=utf-8'
const LOGIN_BODY_LIMIT = 4096

/**
 * `GET /` (the page, or the login form without a session), `GET /admin.js`, `GET /admin.css`, `POST /login`,
 * `POST /logout`, and `/api/...` (routes/admin-api.ts); registered under the dashboard's prefix.
 */
export async function adminRoutes (scope: FastifyInstance, options: AdminRoutesOptions) {
  const { sessions } = options
  const origins = createOriginPolicy([])
  const base = escapeAttribute(options.base)
  const render = (html: Buffer, message = '') => html.toString('utf8')
    .replaceAll('{{BASE}}', base)
    .replace('{{MESSAGE}}', escapeText(message))
  const page = render(options.assets.page)
  const login = (message = '') => render(options.assets.login, message)

  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: LOGIN_BODY_LIMIT }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  scope.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('x-frame-options', 'DENY')
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on form posts, and the Origin
    // check below needs the real one
    reply.header('referrer-policy', 'same-origin')
    if (reply.getHeader('cache-control') === undefined) reply.header('cache-control', 'no-store')
    return payload
  })
  await scope.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => new GatewayErrors.ADMIN_RATE_LIMITED(context.after)
  })
  // a form login that failed shows the login page again, with why
  scope.setErrorHandler(async (err: Error & { statusCode?: number }, request, reply) => {
    if (!isFormLogin(request) || err.statusCode === undefined || err.statusCode >= 500) throw err
    return await sendHtml(reply.code(err.statusCode), login(err.message))
  })

  /** The session of the request's cookie, or null. */
  const sessionOf = (request: FastifyRequest): AdminSessionRecord | null =>
    sessions.get(readCookie(request.headers.cookie, SESSION_COOKIE))

  /** Cross-site requests never change anything: the Origin must be this host's (SameSite=Strict does the rest). */
  const sameOrigin = (request: FastifyRequest): void => {
    const self = { protocol: request.protocol, host: request.host }
    if (request.headers['sec-fetch-site'] === 'cross-site' || !origins.allowed(request.headers.origin, self)) {
      throw new GatewayErrors.ADMIN_FORBIDDEN('cross-origin request refused')
    }
  }

  /** The cookie's Secure attribute: over https (as the server sees it: trustProxy decides), or as configured. */
  const secure = (request: FastifyRequest): boolean => options.secureCookie === 'auto' ? request.protocol === 'https' : options.secureCookie

  scope.get('/', async (request, reply) => {
    reply.header('content-security-policy', ADMIN_CSP)
    return await sendHtml(reply, sessionOf(request) === null ? login() : page)
  })
  const asset = (body: Buffer, type: string) => {
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    return async (request: FastifyRequest, reply: FastifyReply) => {
      reply.header('etag', etag).header('cache-control', 'no-cache')
      if (request.headers['if-none-match'] === etag) return reply.code(304).send()
      return reply.type(type).send(body)
    }
  }
  scope.get('/admin.js', asset(options.assets.script, 'text/javascript; charset=utf-8'))
  scope.get('/admin.css', asset(options.assets.style, 'text/css; charset=utf-8'))

  scope.post('/login', {
    bodyLimit: LOGIN_BODY_LIMIT,
    config: { rateLimit: { max: options.loginRateLimit.max, timeWindow: options.loginRateLimit.timeWindowMs } }
  }, async (request, reply) => {
    sameOrigin(request)
    const parsed = LoginBody.safeParse(request.body ?? {})
    if (!parsed.success) throw new GatewayErrors.ADMIN_BAD_REQUEST(formatIssues(parsed.error.issues, { first: true }))
    let ok = false
    try {
      ok = await options.verify(parsed.data.password)
    } catch (err) {
      request.log.error({ err }, 'admin password check failed')
    }
    if (!ok) {
      request.log.warn('admin login refused: wrong password')
      throw new GatewayErrors.ADMIN_UNAUTHORIZED('wrong password')
    }
    const { id, session } = sessions.create()
    reply.header('set-cookie', sessionCookie(SESSION_COOKIE, id, { path: options.base, maxAgeS: Math.floor(options.sessionTtlMs / 1000), secure: secure(request) }))
    request.log.info('admin logged in')
    if (isFormLogin(request)) return reply.code(303).header('location', options.base).send()
    const answer: AdminSession = { csrfToken: session.csrfToken, expiresAt: session.expiresAt, refreshMs: options.refreshMs, instanceId: options.registry.instanceId }
    return answer
  })

  scope.post('/logout', { bodyLimit: LOGIN_BODY_LIMIT }, async (request, reply) => {
    sameOrigin(request)
    sessions.delete(readCookie(request.headers.cookie, SESSION_COOKIE))
    reply.header('set-cookie', sessionCookie(SESSION_COOKIE, '', { path: options.base, maxAgeS: 0, secure: secure(request) }))
    if (isForm(request)) return reply.code(303).header('location', options.base).send()
    return reply.code(204).send()
  })

  await scope.register(adminApiRoutes, {
    prefix: '/api',
    registry: options.registry,
    sampler: options.sampler,
    refreshMs: options.refreshMs,
    bodyLimit: options.bodyLimit,
    session: (request) => {
      const session = sessionOf(request)
      if (session === null) throw new GatewayErrors.ADMIN_UNAUTHORIZED('log in first: POST ' + options.base + '/login')
      return session
    },
    checkChange: (request, session) => {
      sameOrigin(request)
      if (!csrfMatches(session, request.headers['x-csrf-token'])) throw new GatewayErrors.ADMIN_FORBIDDEN('missing or wrong X-CSRF-Token')
    }
  })
}

function isForm (request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
}

function isFormLogin (request: FastifyRequest): boolean {
  return request.method === 'POST' && request.routeOptions.url?.endsWith('/login') === true && isForm(request)
}

async function sendHtml (reply: FastifyReply, html: string) {
  reply.header('content-security-policy', ADMIN_CSP)
  return reply.type(HTML).send(html)
}

function escapeText (value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function escapeAttribute (value: string): string {
  return escapeText(value).replace(/"/g, '&quot;')
}
