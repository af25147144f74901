import { isRoomName, ROOM_NAME_RULE } from '../rooms/names.js'

/** Kafka's own rule for topic names. */
export const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,249}$/

export function isTopicName (value: unknown): value is string {
  return typeof value === 'string' && TOPIC_PATTERN.test(value) && value !== '.' && value !== '..'
}

/** A message's value cannot fill a room template: the message goes straight to the dead-letter topic. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError'
}

/**
 * A compiled room template such as `user:{userId}` or `org:{org.id}:orders`: literal room characters and `{path}`
 * placeholders, where `path` is a dotted path into the message's JSON value. `fill` throws a TemplateError when a
 * field is missing, is not a string or number, or the filled room is not a legal room name.
 */
export interface RoomTemplate {
  readonly source: string
  /** the dotted paths the template reads */
  readonly fields: readonly string[]
  fill (value: unknown): string
}

const PLACEHOLDER = /\{([^{}]*)\}/g
const PATH = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/
const LITERAL = /^[A-Za-z0-9_.:@-]*$/

/** Compiles `source`; throws a TypeError naming the problem when it is not a usable template. */
export function compileRoomTemplate (source: string): RoomTemplate {
  if (typeof source !== 'string' || source.length === 0) throw new TypeError('a room template must be a non-empty string')
  const parts: Array<string | string[]> = []
  const fields: string[] = []
  let last = 0
  for (const match of source.matchAll(PLACEHOLDER)) {
    const literal = source.slice(last, match.index)
    checkLiteral(source, literal)
    if (literal.length > 0) parts.push(literal)
    const path = match[1].trim()
    if (!PATH.test(path)) throw new TypeError(`room template ${JSON.stringify(source)}: {${match[1]}} is not a field path (letters, digits, _ $ - and dots)`)
    parts.push(path.split('.'))
    fields.push(path)
    last = match.index + match[0].length
  }
  const tail = source.slice(last)
  checkLiteral(source, tail)
  if (tail.length > 0) parts.push(tail)
  if (fields.length === 0 && !isRoomName(source)) {
    throw new TypeError(`room template ${JSON.stringify(source)} is not a legal room name (${ROOM_NAME_RULE})`)
  }
  return {
    source,
    fields,
    fill (value: unknown): string {
      let room = ''
      for (const part of parts) room += typeof part === 'string' ? part : fieldText(value, part)
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
  topic: string
  template: string
}

/** Bridge rules as code or configuration gives them: `['topic=template', ...]`, `[[topic, template], ...]` or `{ topic: template | template[] }`. */
export type BridgeRulesInput = ReadonlyArray<string | readonly [string, string]> | Readonly<Record<string, string | readonly string[]>>

/** Normalises and checks bridge rules; throws a TypeError naming the bad rule. */
export function parseBridgeRules (input: BridgeRulesInput): BridgeRule[] {
  const rules: BridgeRule[] = []
  const add = (topic: string, template: string) => {
    if (!isTopicName(topic)) throw new TypeError(`bridge topic ${JSON.stringify(topic)} is not a Kafka topic name`)
    compileRoomTemplate(template)
    rules.push({ topic, template })
  }
  if (Array.isArray(input)) {
    for (const item of input as ReadonlyArray<string | readonly [string, string]>) {
      if (typeof item === 'string') {
        const eq = item.indexOf('=')
        if (eq <= 0) throw new TypeError(`bridge rule ${JSON.stringify(item)} must be topic=roomTemplate`)
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
