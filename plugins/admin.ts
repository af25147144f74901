import fp from 'fastify-plugin'
import { z } from 'zod'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { ensureRooms } from './rooms.js'
import { fnOption, intOption, parseOptions } from '../lib/options.js'
import { GatewayErrors } from '../lib/errors.js'
import { SecretMatcher } from '../lib/auth/secret.js'
import { SessionStore } from '../lib/admin/sessions.js'
import { CountersSampler } from '../lib/admin/sampler.js'
import { defaultPublicRoot } from '../routes/demo.js'
import { adminRoutes, type AdminAssets } from '../routes/admin.js'

export type {
  AdminSession, AdminOverview, AdminInstance, AdminRooms, AdminRoom, AdminPublishResult
} from '../lib/admin/api.js'
export { LoginBody, PublishBody, RoomsQuery } from '../lib/admin/api.js'

const PLUGIN = 'fastify-gateways/admin'

/** checks a password typed on the login form (a host's own user store, a hash...) */
export type AdminVerify = (password: string) => boolean | Promise<boolean>

const AdminOptions = z.strictObject({
  /** the admin password, compared in constant time; or give `verify` */
  password: z.string().min(8, { error: 'must be at least 8 characters' }).optional(),
  verify: fnOption<AdminVerify>('(password) => boolean | Promise<boolean>'),
  /** where the dashboard lives; its API is `<path>/api/...` */
  path: z.string().regex(/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/, { error: 'must be a path such as /admin (no trailing slash)' }).default('/admin'),
  /** how long a login lasts */
  sessionTtlMs: intOption(60_000, 30 * 24 * 3600 * 1000, 8 * 3600 * 1000),
  /** sessions kept at most (a new login pushes out the oldest) */
  maxSessions: intOption(1, 100_000, 100),
  /** login attempts per client address and window (every attempt counts) */
  loginRateLimit: z.strictObject({
    max: intOption(1, 1_000_000, 10),
    timeWindowMs: intOption(1000, 24 * 3600 * 1000, 60_000)
  }).default({ max: 10, timeWindowMs: 60_000 }),
  /** the cookie's Secure attribute: `auto` when the request came over https (trustProxy honoured) */
  secureCookie: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /** how often the page refreshes its numbers, in ms */
  refreshMs: intOption(250, 60_000, 1000),
  /** largest JSON body of `POST <path>/api/publish` */
  bodyLimit: intOption(256, 16 * 1024 * 1024, 65_536),
  /** directory with index.html, login.html, admin.js, admin.css; default: the package's public/admin */
  root: z.string().min(1).optional()
}).refine((o) => (o.password === undefined) !== (o.verify === undefined), { error: 'give either password or verify (one of them)' })

export type AdminOptions = z.input<typeof AdminOptions>

const FILES = { page: 'index.html', login: 'login.html', script: 'admin.js', style: 'admin.css' } as const

/**
 * The admin dashboard (docs/operations.md): `GET <path>` is the page (a login form until logged in), `POST
 * <path>/login` and `<path>/logout`, the static `admin.js`/`admin.css`, and the JSON API `<path>/api/...`, all in an
 * encapsulated scope. Sessions live in memory (bounded); login attempts are rate limited per address.
 */
async function adminPlugin (app: FastifyInstance, raw: AdminOptions) {
  const options = parseOptions(PLUGIN, AdminOptions, raw)
  const rooms = await ensureRooms(app)
  const matcher = options.password === undefined ? null : new SecretMatcher(options.password)
  const verify: AdminVerify = matcher === null ? options.verify as AdminVerify : (password) => matcher.matches(password)
  const root = options.root ?? join(defaultPublicRoot(), 'admin')
  const assets = {} as Record<keyof typeof FILES, Buffer>
  for (const [key, file] of Object.entries(FILES) as Array<[keyof typeof FILES, string]>) {
    try {
      assets[key] = readFileSync(join(root, file))
    } catch (err) {
      throw new GatewayErrors.INVALID_OPTIONS(PLUGIN, `root: cannot read ${file} in ${root} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
    }
  }
  const sessions = new SessionStore({ ttlMs: options.sessionTtlMs, maxSessions: options.maxSessions })
  const sampler = new CountersSampler(rooms.counters, { intervalMs: 1000, keep: 61, windowMs: 10_000, idleMs: 60_000 })
  app.addHook('onClose', async () => {
    sampler.stop()
    sessions.clear()
  })
  await app.register(adminRoutes, {
    prefix: options.path,
    base: options.path,
    registry: rooms,
    sessions,
    sampler,
    verify,
    assets: assets as AdminAssets,
    sessionTtlMs: options.sessionTtlMs,
    secureCookie: options.secureCookie,
    loginRateLimit: options.loginRateLimit,
    refreshMs: options.refreshMs,
    bodyLimit: options.bodyLimit
  })
}

export const admin = fp(adminPlugin, { fastify: '5.x', name: PLUGIN })
export default admin
