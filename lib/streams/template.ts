import { isRoomName, ROOM_NAME_RULE } from '../rooms/names.js'

/** A message's value cannot fill a room template: the message goes straight to the dead letters. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError'
}

/**
 * A compiled room template such as `user:{userId}`, `org:{org.id}:orders` or `device:{1}`: literal room characters
 * and placeholders. `{path}` is a dotted path into the message's JSON value; `{1}`..`{n}` are the values of the
 * pattern's single-level wildcards in order (`+` in an MQTT filter, `*` in a NATS subject) when the template was
 * compiled for a pattern that has them. `fill` throws a TemplateError when a field is missing, is not a string or
 * number, or the filled room is not a legal room name.
 */
export interface RoomTemplate {
  readonly source: string
  /** the dotted paths the template reads */
  readonly fields: readonly string[]
  fill (value: unknown, wildcards?: readonly string[]): string
}

export interface TemplateOptions {
  /**
   * How many single-level wildcards the pattern has. When given, a numbered placeholder `{n}` is the n-th wildcard
   * value and must be between 1 and this; when left out (brokers without wildcards) it is a JSON field like any other.
   */
  wildcards?: number
}

const PLACEHOLDER = /\{([^{}]*)\}/g
const PATH = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/
const NUMBER = /^[1-9][0-9]{0,2}$/
const LITERAL = /^[A-Za-z0-9_.:@-]*$/

/** Compiles `source`; throws a TypeError naming the problem when it is not a usable template. */
export function compileRoomTemplate (source: string, options: TemplateOptions = {}): RoomTemplate {
  if (typeof source !== 'string' || source.length === 0) throw new TypeError('a room template must be a non-empty string')
  const parts: Array<string | string[] | number> = []
  const fields: string[] = []
  let last = 0
  for (const match of source.matchAll(PLACEHOLDER)) {
    const literal = source.slice(last, match.index)
    checkLiteral(source, literal)
    if (literal.length > 0) parts.push(literal)
    const path = match[1].trim()
    if (options.wildcards !== undefined && NUMBER.test(path)) {
      const n = Number(path)
      if (n > options.wildcards) {
        throw new TypeError(`room template ${JSON.stringify(source)}: {${n}} needs ${n} wildcards, the pattern has ${options.wildcards}`)
      }
      parts.push(n - 1)
    } else {
      if (!PATH.test(path)) throw new TypeError(`room template ${JSON.stringify(source)}: {${match[1]}} is not a field path (letters, digits, _ $ - and dots)`)
      parts.push(path.split('.'))
      fields.push(path)
    }
    last = match.index + match[0].length
  }
  const tail = source.slice(last)
  checkLiteral(source, tail)
  if (tail.length > 0) parts.push(tail)
  if (parts.every((part) => typeof part === 'string') && !isRoomName(source)) {
    throw new TypeError(`room template ${JSON.stringify(source)} is not a legal room name (${ROOM_NAME_RULE})`)
  }
  return {
    source,
    fields,
    fill (value: unknown, wildcards: readonly string[] = []): string {
      let room = ''
      for (const part of parts) {
        if (typeof part === 'string') room += part
        else if (typeof part === 'number') room += wildcardText(wildcards, part)
        else room += fieldText(value, part)
      }
      if (!isRoomName(room)) {
        throw new TemplateError(`room ${JSON.stringify(room)} from template ${JSON.stringify(source)} is not a legal room name (${ROOM_NAME_RULE})`)
      }
      return room
    }
  }
}

function checkLiteral (source: string, literal: string): void {
  if (!LITERAL.test(literal)) {
    throw new TypeError(`room template ${JSON.stringify(source)}: ${JSON.stringify(literal)} has characters a room name cannot have (${ROOM_NAME_RULE})`)
  }
}

function wildcardText (wildcards: readonly string[], index: number): string {
  const value = wildcards[index]
  if (value === undefined || value.length === 0) throw new TemplateError(`wildcard {${index + 1}} is empty`)
  return value
}

function fieldText (value: unknown, path: string[]): string {
  let current: unknown = value
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) {
      throw new TemplateError(`field ${path.join('.')} is missing from the message value`)
    }
    current = (current as Record<string, unknown>)[key]
  }
  if (typeof current === 'string' && current.length > 0) return current
  if (typeof current === 'number' && Number.isFinite(current)) return String(current)
  throw new TemplateError(`field ${path.join('.')} must be a non-empty string or a number, got ${describe(current)}`)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return 'an empty string'
  return typeof value
}

export interface BridgeRule {
  /** the topic, filter, subject or stream key (the broker's pattern) */
  topic: string
  template: string
}

/** Bridge rules as code or configuration gives them: `['pattern=template', ...]`, `[[pattern, template], ...]` or `{ pattern: template | template[] }`. */
export type BridgeRulesInput = ReadonlyArray<string | readonly [string, string]> | Readonly<Record<string, string | readonly string[]>>

export interface BridgeRuleSyntax {
  /** the broker's word for a pattern: 'topic', 'topic filter', 'subject', 'stream key' */
  noun: string
  /** why `pattern` is not valid, or null */
  problem (pattern: string): string | null
  /** its number of single-level wildcards, when numbered placeholders are wildcard values (see TemplateOptions) */
  wildcards? (pattern: string): number
}

/** Normalises and checks bridge rules; throws a TypeError naming the bad rule. */
export function parseRules (input: BridgeRulesInput, syntax: BridgeRuleSyntax): BridgeRule[] {
  const rules: BridgeRule[] = []
  const add = (topic: string, template: string) => {
    const problem = syntax.problem(topic)
    if (problem !== null) throw new TypeError(`bridge ${syntax.noun} ${JSON.stringify(topic)} ${problem}`)
    compileRoomTemplate(template, { wildcards: syntax.wildcards?.(topic) })
    rules.push({ topic, template })
  }
  if (Array.isArray(input)) {
    for (const item of input as ReadonlyArray<string | readonly [string, string]>) {
      if (typeof item === 'string') {
        const eq = item.indexOf('=')
        if (eq <= 0) throw new TypeError(`bridge rule ${JSON.stringify(item)} must be ${syntax.noun.replace(/ (\w)/g, (_, c: string) => c.toUpperCase())}=roomTemplate`)
        add(item.slice(0, eq).trim(), item.slice(eq + 1).trim())
      } else {
        add(item[0], item[1])
      }
    }
  } else {
    for (const [topic, templates] of Object.entries(input as Record<string, string | readonly string[]>)) {
      for (const template of typeof templates === 'string' ? [templates] : templates) add(topic, template)
    }
  }
  return rules
}
