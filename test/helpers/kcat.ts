import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { requireTool } from './tools.js'

/**
 * librdkafka's mock Kafka cluster, as embedded in Debian's kcat (docs/testing.md): a Kafka-protocol broker set on loopback
 * with random ports. kcat runs under a small `sh` watchdog that reads its own stdin and kills kcat (SIGKILL, which
 * also ends a SIGSTOPped process) when that stdin closes, which happens when this process ends for any reason,
 * even a SIGKILL of the test runner.
 */
export interface MockKafka {
  /** `127.0.0.1:PORT` of each mock broker */
  readonly brokers: string[]
  /** kcat's pid (not the watchdog's) */
  readonly pid: number
  /** SIGSTOP: the brokers stop answering but keep their ports and state (an outage) */
  pause (): void
  /** SIGCONT: the brokers answer again */
  resume (): void
  /** kills kcat and waits for the watchdog to exit; safe to call twice */
  close (): Promise<void>
}

type TapLike = Parameters<typeof requireTool>[0] & { after: (fn: () => unknown) => void }

const WATCHDOG = [
  '"$@" &',
  'pid=$!',
  'echo "kcat-pid $pid" >&2',
  // stdin EOF (the parent closed it or died): kill kcat, stopped or not
  'cat >/dev/null',
  'kill -9 "$pid" 2>/dev/null',
  'wait "$pid" 2>/dev/null',
  'exit 0'
].join('\n')

/**
 * Starts a mock cluster of `brokers` brokers (3 by default) for this test (closed in `t.after`), or returns null
 * when kcat is missing (the test is skipped locally, failed under CI). Rejects when kcat does not report its ports
 * within `timeoutMs`.
 */
export async function startMockKafka (t: TapLike, { timeoutMs = 10_000, brokers = 3 } = {}): Promise<MockKafka | null> {
  const kcat = requireTool(t, 'kcat', ['/usr/bin/kcat'])
  if (kcat === null) return null
  const child = spawn('sh', ['-c', WATCHDOG, 'kcat-watchdog',
    kcat, '-X', `test.mock.num.brokers=${brokers}`, '-b', '127.0.0.1:1', '-C', '-t', '__keepalive', '-o', 'end', '-q'
  ], { stdio: ['pipe', 'ignore', 'pipe'] }) as unknown as ChildProcessWithoutNullStreams
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  let closed = false
  const close = async () => {
    if (!closed) {
      closed = true
      child.stdin.end()
    }
    await exited
  }
  t.after(close)
  try {
    const { pid, addresses } = await readStartup(child, timeoutMs)
    return {
      brokers: addresses,
      pid,
      pause: () => { process.kill(pid, 'SIGSTOP') },
      resume: () => { process.kill(pid, 'SIGCONT') },
      close
    }
  } catch (err) {
    await close()
    throw err
  }
}

function readStartup (child: ChildProcessWithoutNullStreams, timeoutMs: number): Promise<{ pid: number, addresses: string[] }> {
  return new Promise((resolve, reject) => {
    let text = ''
    let pid: number | undefined
    const done = (err: Error | null, addresses?: string[]) => {
      clearTimeout(timer)
      child.stderr.off('data', onData)
      child.off('exit', onExit)
      // keep draining stderr so kcat never blocks on a full pipe
      child.stderr.resume()
      if (err !== null) reject(err)
      else resolve({ pid: pid as number, addresses: addresses as string[] })
    }
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      const pidMatch = /kcat-pid (\d+)/.exec(text)
      if (pidMatch !== null) pid = Number(pidMatch[1])
      const ports = /replaced with (\S+)/.exec(text)
      if (pid !== undefined && ports !== null && /\n/.test(text.slice(ports.index))) {
        done(null, ports[1].split(','))
      }
    }
    const onExit = (code: number | null) => { done(new Error(`kcat exited (${code}) before reporting its ports: ${text.trim()}`)) }
    const timer = setTimeout(() => { done(new Error(`kcat did not report its ports within ${timeoutMs} ms: ${text.trim()}`)) }, timeoutMs)
    child.stderr.on('data', onData)
    child.once('exit', onExit)
  })
}

/**
 * Items that arrive asynchronously (handler calls, dead letters), awaited with a bound: `next()` is the next item
 * not yet taken, `take(n)` the next n, `waitFor(predicate)` until everything received so far satisfies `predicate`.
 */
export class Inbox<T> {
  readonly items: T[] = []
  private taken = 0
  private waiters: Array<() => void> = []

  push (item: T): void {
    this.items.push(item)
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  async next (timeoutMs = 15_000, what = 'an item'): Promise<T> {
    return (await this.take(1, timeoutMs, what))[0]
  }

  async take (count: number, timeoutMs = 15_000, what = `${count} items`): Promise<T[]> {
    await this.waitFor(() => this.items.length - this.taken >= count, timeoutMs, what)
    const out = this.items.slice(this.taken, this.taken + count)
    this.taken += count
    return out
  }

  /** Resolves once `predicate` holds for the items received so far (checked on each arrival). */
  async waitFor (predicate: (items: T[]) => boolean, timeoutMs = 15_000, what = 'the expected items'): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!predicate(this.items)) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (got ${this.items.length})`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
}

/** Polls `check` (a state with no event to await, like `/ready`) every 50 ms until it holds; bounded. */
export async function waitUntil (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Consumer settings for the mock (docs/testing.md): a short session, fast heartbeats, short fetch waits, quick retries. */
export function mockTuning (mock: MockKafka) {
  return {
    brokers: mock.brokers,
    sessionTimeout: 3500,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 100,
    retryBackoffMs: 20,
    fromBeginning: true,
    kafkaConfig: { retry: { restartOnFailure: async () => false } }
  }
}

export interface RawRecord {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: Buffer | null
  headers: Record<string, string>
}

/**
 * A plain kafkajs client for the test's side of the conversation: raw produce (any bytes) and a reader group that
 * collects every record of some topics from their beginning. Closed in `t.after`.
 */
export async function kafkaPeer (t: { after: (fn: () => unknown) => void }, mock: MockKafka) {
  const { Kafka, logLevel, Partitioners } = (await import('kafkajs')).default
  const kafka = new Kafka({ clientId: 'test-peer', brokers: mock.brokers, logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const consumers: Array<{ disconnect: () => Promise<void> }> = []
  t.after(async () => {
    for (const consumer of consumers) await consumer.disconnect().catch(() => {})
    await producer.disconnect().catch(() => {})
  })
  return {
    async produce (topic: string, messages: Array<{ key?: string, value: string | Buffer | null, headers?: Record<string, string> }>) {
      await producer.send({ topic, messages })
    },
    /** Starts a reader group over `topics` (from their beginning); resolves once it joined. */
    async read (topics: string[]) {
      const inboxes = new Map(topics.map((topic) => [topic, new Inbox<RawRecord>()]))
      const consumer = kafka.consumer({ groupId: `reader-${Math.random().toString(36).slice(2)}`, sessionTimeout: 3500, heartbeatInterval: 300, maxWaitTimeInMs: 100 })
      consumers.push(consumer)
      const joined = new Promise<void>((resolve) => { consumer.on(consumer.events.GROUP_JOIN, () => { resolve() }) })
      await consumer.connect()
      await consumer.subscribe({ topics, fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const headers: Record<string, string> = {}
          for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value)
          inboxes.get(topic)?.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value, headers })
        }
      })
      await joined
      return (topic: string) => inboxes.get(topic) as Inbox<RawRecord>
    }
  }
}
