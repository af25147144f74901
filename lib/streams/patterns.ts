/**
 * How each broker names what a handler listens to, and how a message's actual name (topic, subject, stream key)
 * matches it. A pattern is compiled once; `match` returns the values of its single-level wildcards in order (the
 * `{1}`..`{n}` of a room template) or null. Dead letters have a name of their own per broker; a wildcard or a
 * RegExp never reaches them (a failing catch-all handler would feed on its own dead letters), a pattern that names
 * them does.
 */
export interface CompiledPattern {
  readonly source: string
  /** how many single-level wildcards it has (`+` in MQTT, `*` in NATS; none for Kafka and Redis) */
  readonly wildcards: number
  /** the wildcard values, in order, when `name` matches; else null */
  match (name: string): string[] | null
}

export interface PatternSyntax {
  /** the broker's word for a pattern, in error messages ('topic', 'topic filter', 'subject', 'stream key') */
  readonly noun: string
  /**
   * The number of single-level wildcards of a pattern, for brokers that have them: numbered placeholders of room
   * templates (`{1}`) are then wildcard values. Left out where they are JSON fields like any other (Kafka, Redis).
   */
  wildcards? (pattern: string): number
  /** why `pattern` is not a valid pattern, or null when it is */
  problem (pattern: string): string | null
  compile (pattern: string): CompiledPattern
  /** what a consumer subscribes to for RegExp handlers, where the broker needs a pattern (`#` in MQTT) */
  catchAll?: string
  /** where the dead letters of a message from `name` go */
  deadLetterOf (name: string): string
  /** whether `name` (a message's name or a pattern) is a dead-letter destination */
  isDeadLetter (name: string): boolean
}

function exact (source: string): CompiledPattern {
  const none: string[] = []
  return { source, wildcards: 0, match: (name) => name === source ? none : null }
}

/** Kafka topics: exact names (`A-Za-z0-9._-`, 1 to 249); dead letters on `<topic><suffix>`. */
export function kafkaTopics (dlqSuffix = '.dlq'): PatternSyntax {
  return {
    noun: 'topic',
    problem: (pattern) => isKafkaTopic(pattern) ? null : 'is not a Kafka topic name (1 to 249 characters of A-Za-z0-9._-)',
    compile: exact,
    deadLetterOf: (topic) => `${topic}${dlqSuffix}`,
    isDeadLetter: (name) => name.endsWith(dlqSuffix)
  }
}

export function isKafkaTopic (value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,249}$/.test(value) && value !== '.' && value !== '..'
}

/** Redis stream keys: exact keys; dead letters on `<key><suffix>`. */
export function redisStreamKeys (dlqSuffix = '.dlq'): PatternSyntax {
  return {
    noun: 'stream key',
    problem: (pattern) => isStreamKey(pattern) ? null : 'is not a stream key (1 to 256 characters of A-Za-z0-9_.:{}-)',
    compile: exact,
    deadLetterOf: (key) => `${key}${dlqSuffix}`,
    isDeadLetter: (name) => name.endsWith(dlqSuffix)
  }
}

export function isStreamKey (value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_.:{}-]{1,256}$/.test(value)
}

/**
 * MQTT topic filters: levels split by `/`, `+` is one whole level, `#` the rest (last level only, also matching the
 * parent level). A wildcard first level never matches a topic that starts with `$` (MQTT 3.1.1 and 5, 4.7.2).
 * Dead letters on `<prefix><topic>` (`dlq/devices/d1/telemetry`).
 */
export function mqttTopics (dlqPrefix = 'dlq/'): PatternSyntax {
  return {
    noun: 'topic filter',
    problem: mqttFilterProblem,
    catchAll: '#',
    wildcards: (filter) => filter.split('/').filter((level) => level === '+').length,
    compile: (filter) => {
      const levels = filter.split('/')
      const wildcards = levels.filter((level) => level === '+').length
      const multi = levels.at(-1) === '#'
      const fixed = multi ? levels.length - 1 : levels.length
      return {
        source: filter,
        wildcards,
        match (topic) {
          if (topic.startsWith('$') && (levels[0] === '+' || levels[0] === '#')) return null
          const parts = topic.split('/')
          if (multi ? parts.length < fixed : parts.length !== fixed) return null
          const values: string[] = []
          for (let i = 0; i < fixed; i++) {
            if (levels[i] === '+') values.push(parts[i])
            else if (levels[i] !== parts[i]) return null
          }
          return values
        }
      }
    },
    deadLetterOf: (topic) => `${dlqPrefix}${topic}`,
    isDeadLetter: (name) => name.startsWith(dlqPrefix)
  }
}

function mqttFilterProblem (filter: string): string | null {
  if (typeof filter !== 'string' || filter.length === 0 || Buffer.byteLength(filter) > 65535) return 'must be 1 to 65535 bytes'
  if (/\p{Cc}/u.test(filter)) return 'must not contain control characters'
  if (filter.startsWith('$share/')) return 'must not be a shared subscription (the gateway shares its subscriptions itself)'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be a whole level, and the last'
    if (level.includes('+') && level !== '+') return '+ must be a whole level'
  }
  return null
}

/** An MQTT topic name to publish to: no wildcards, no control characters, 1 to 65535 bytes. */
export function mqttTopicProblem (topic: string): string | null {
  if (typeof topic !== 'string' || topic.length === 0 || Buffer.byteLength(topic) > 65535) return 'must be 1 to 65535 bytes'
  if (/[+#]/.test(topic)) return 'must not contain the wildcards + or #'
  if (/\p{Cc}/u.test(topic)) return 'must not contain control characters'
  return null
}

const NATS_TOKEN = /^[^\s.*>]+$/

/**
 * NATS subjects: tokens split by `.`, `*` is one whole token, `>` the rest (one token or more, last only). Dead
 * letters on `<prefix><subject>` (`dlq.orders.o1.status`).
 */
export function natsSubjects (dlqPrefix = 'dlq.'): PatternSyntax {
  return {
    noun: 'subject',
    problem: (subject) => natsSubjectProblem(subject, true),
    catchAll: '>',
    wildcards: (subject) => subject.split('.').filter((token) => token === '*').length,
    compile: (subject) => {
      const tokens = subject.split('.')
      const wildcards = tokens.filter((token) => token === '*').length
      const multi = tokens.at(-1) === '>'
      const fixed = multi ? tokens.length - 1 : tokens.length
      return {
        source: subject,
        wildcards,
        match (name) {
          const parts = name.split('.')
          if (multi ? parts.length <= fixed : parts.length !== fixed) return null
          const values: string[] = []
          for (let i = 0; i < fixed; i++) {
            if (tokens[i] === '*') values.push(parts[i])
            else if (tokens[i] !== parts[i]) return null
          }
          return values
        }
      }
    },
    deadLetterOf: (subject) => `${dlqPrefix}${subject}`,
    isDeadLetter: (name) => name.startsWith(dlqPrefix)
  }
}

/** Why `subject` is not a NATS subject (with wildcards when `wildcards`), or null. */
export function natsSubjectProblem (subject: string, wildcards: boolean): string | null {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > 1024) return 'must be 1 to 1024 characters'
  const tokens = subject.split('.')
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]
    if (wildcards && token === '*') continue
    if (wildcards && token === '>' && i === tokens.length - 1) continue
    if (!NATS_TOKEN.test(token)) {
      return wildcards
        ? 'must be tokens separated by dots, without spaces; * is one whole token and > the last one'
        : 'must be tokens separated by dots, without spaces or wildcards'
    }
  }
  return null
}
