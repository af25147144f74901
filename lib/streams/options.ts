import { z } from 'zod'
import { decoratorOption, intOption } from '../options.js'
import { parseRules, type BridgeRulesInput } from './template.js'
import type { PatternSyntax } from './patterns.js'

/** The bridge option of a stream gateway: rules checked against the broker's pattern syntax. */
export function bridgeOption (syntax: PatternSyntax) {
  const rule = `${syntax.noun.replace(/ (\w)/g, (_, c: string) => c.toUpperCase())}=roomTemplate`
  return z.custom<BridgeRulesInput>((v) => v !== null && typeof v === 'object', {
    error: `must be a list of ${rule} rules or an object of ${syntax.noun}: roomTemplate`
  }).transform((v, ctx) => {
    try {
      return parseRules(v, syntax)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  }).default([])
}

/** Options every stream gateway shares (same names, same meaning, same defaults). */
export function streamOptions (syntax: PatternSyntax, decorator: string) {
  return {
    /** the app decorator: `app.<decorator>` */
    decorator: decoratorOption(decorator),
    /** pattern to room rules */
    bridge: bridgeOption(syntax),
    /** retries of a failing handler before its message is dead-lettered */
    retries: intOption(0, 100, 3),
    /** wait before the first retry, doubled each retry (at most 30 s) */
    retryBackoffMs: intOption(0, 600_000, 200),
    /** longest close waits for the in-flight message, its acknowledgement and pending emits */
    closeTimeoutMs: intOption(0, 3_600_000, 5000),
    /** wait before reconnecting after a failure; doubles per failure in a row up to `reconnectBackoffMaxMs` */
    reconnectBackoffMs: intOption(1, 600_000, 500),
    reconnectBackoffMaxMs: intOption(1, 3_600_000, 10_000)
  }
}

/** An object option passed through to a client library. */
export const passThrough = <T>(what: string) => z.custom<T>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), {
  error: `must be an object of ${what}`
})
