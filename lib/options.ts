import { z } from 'zod'
import { GatewayErrors } from './errors.js'

// Keys Fastify itself puts on or reads from register options; not the plugin's business.
const FASTIFY_KEYS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * The options toolkit of every plugin: one parser, one issue formatter and the option helpers shared by all
 * gateways. Options are validated once, at register time. Unknown keys are refused (a typo should not silently
 * mean "default"); the error names the option and what is wrong.
 */
export function parseOptions<S extends z.ZodType> (plugin: string, schema: S, raw: unknown): z.output<S> {
  const input: Record<string, unknown> = {}
  for (const [key, value] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (!FASTIFY_KEYS.has(key)) input[key] = value
  }
  const result = schema.safeParse(input)
  if (result.success) return result.data
  throw new GatewayErrors.INVALID_OPTIONS(plugin, formatIssues(result.error.issues))
}

/**
 * One line per zod issue (`path: message`), joined with `; `: the one formatter for options, frames and bodies.
 * `unknown: 'key'` keeps zod's own words for an unknown key (a body or frame field) instead of "unknown option".
 */
export function formatIssues (issues: readonly z.core.$ZodIssue[], options: { first?: boolean, unknown?: 'option' | 'key' } = {}): string {
  const listed = options.first === true ? issues.slice(0, 1) : issues
  if (listed.length === 0) return 'invalid value'
  return listed.map((issue) => formatIssue(issue, options.unknown)).join('; ')
}

export function formatIssue (issue: z.core.$ZodIssue, unknown: 'option' | 'key' = 'option'): string {
  const path = issue.path.map(String).join('.')
  const message = issue.code === 'unrecognized_keys' && unknown === 'option'
    ? `unknown option ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
    : issue.message
  return path === '' ? message : `${path}: ${message}`
}

/** zod check for a function-valued option. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a type guard for any function signature
export const isFunction = (value: unknown): value is (...args: any[]) => unknown => typeof value === 'function'

/** A whole-number option within bounds, with its default. */
export const intOption = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback)

/** An optional function option; `what` is its signature, for the error message. */
export const fnOption = <T>(what: string) => z.custom<T>(isFunction, { message: `must be a function ${what}` }).optional()

/** A route path option. */
export const pathOption = z.string().regex(/^\/[^\s?#]*$/, { message: 'must be a path starting with /' })

/** A decorator name option (`app.<name>`), for gateways whose default name may clash with another plugin's. */
export const decoratorOption = (fallback: string) =>
  z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/, { message: 'must be a JavaScript identifier' }).default(fallback)
