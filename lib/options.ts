import type { z } from 'zod'
import { GatewayErrors } from './errors.js'

// Keys Fastify itself puts on or reads from register options; not the plugin's business.
const FASTIFY_KEYS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * Validates a plugin's options once, at register time. Unknown keys are refused (a typo should not silently mean
 * "default"); the error names the option and what is wrong.
 */
export function parseOptions<S extends z.ZodType> (plugin: string, schema: S, raw: unknown): z.output<S> {
  const input: Record<string, unknown> = {}
  for (const [key, value] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (!FASTIFY_KEYS.has(key)) input[key] = value
  }
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.join('.')
    if (issue.code === 'unrecognized_keys') return `unknown option ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
    return path === '' ? issue.message : `${path}: ${issue.message}`
  })
  throw new GatewayErrors.INVALID_OPTIONS(plugin, problems.join('; '))
}

/** zod check for a function-valued option. */
export const isFunction = (value: unknown): value is (...args: any[]) => any => typeof value === 'function'
