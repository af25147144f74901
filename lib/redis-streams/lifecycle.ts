import type { Redis } from 'ioredis'
import { GatewayErrors } from '../errors.js'
import { errorText, keepAlive, restartLoop, settlesBy, sleep } from '../streams/async.js'
import type { Delivery, Failure, StreamLog, StreamProcessor } from '../streams/processor.js'

/** What a Redis Streams handler receives besides `value`, `attempt` and `signal`. */
export interface RedisStreamFields {
  /** the stream key */
  stream: string
  /** the entry id (`1700000000000-0`) */
  id: string
  /** the entry's other fields (all but `data`) as UTF-8 text */
  fields: Record<string, string>
}

/** One entry as read (Buffer variants: the bytes stay as they were written). */
export interface RawEntry {
  stream: string
  id: string
  /** field name → value, in the entry's order */
  fields: Array<[string, Buffer]>
}

export type RedisStreamsProcessor = StreamProcessor<RedisStreamFields, RawEntry>

export interface RedisStreamsLifecycleOptions {
  /** the connection for blocking reads and claims (its own: a blocked read holds it) */
  reader: Redis
  /** the connection for acknowledgements, dead letters and emits */
  writer: Redis
  /** close `writer` on stop (false for a host's client) */
  ownWriter: boolean
  group: string
  /** this instance's name in the group */
  consumer: string
  /** an entry pending this long with a consumer that stopped is claimed (XAUTOCLAIM) */
  claimMs: number
  /** how long one XREADGROUP waits for new entries */
  blockMs: number
  /** entries per read */
  count: number
  /** a group created here starts at the stream's first entry (true) or at its end (false) */
  fromBeginning: boolean
  reconnectBackoffMs: number
  reconnectBackoffMaxMs: number
  processor: RedisStreamsProcessor
  log: StreamLog
  closeTimeoutMs: number
}

interface Retry { stream: string, id: string, due: number, delay: number }

/**
 * A consumer in a Redis Streams consumer group over its whole life, started in the background. Each round waits for
 * the connection, creates the group where it is missing (at the stream's end, MKSTREAM), takes back this consumer's
 * own pending entries (a restart under the same name), then reads with XREADGROUP ... BLOCK until the connection or
 * the group fails (a Redis restart without its data), and the next round sets up again.
 *
 * At least once: XACK only after handling. Entries a crashed instance left pending are claimed with XAUTOCLAIM once
 * idle for `claimMs`, and the delivery count Redis keeps is the attempt: past the retries, the entry is
 * dead-lettered. A failing entry stays pending and is claimed again by this consumer after the backoff (XCLAIM, which
 * counts a delivery). A dead letter is an XADD to `<key>.dlq` and the XACK of the original in one script. A long handler
 * keeps its entry from being claimed by resetting its idle time (XCLAIM ... JUSTID).
 */
export class RedisStreamsLifecycle {
  private readonly abort = new AbortController()
  private readonly pendingEmits = new Set<Promise<unknown>>()
  private readonly retries = new Map<string, Retry>()
  private started = false
  private stopping = false
  private stopped: Promise<void> | null = null
  private consuming = false
  private inFlight: Promise<unknown> | null = null
  private loop: Promise<void> | null = null
  private keys: string[] = []
  private nextClaim = 0

  constructor (private readonly options: RedisStreamsLifecycleOptions) {}

  start (): void {
    if (this.started) return
    this.started = true
    const { log } = this.options
    this.loop = restartLoop({
      signal: this.abort.signal,
      backoffMs: this.options.reconnectBackoffMs,
      backoffMaxMs: this.options.reconnectBackoffMaxMs,
      round: () => this.round(),
      onError: (err, failures) => {
        this.consuming = false
        if (failures <= 1) log.warn({ err: { message: errorText(err) }, failures }, 'redis-streams: cannot consume; retrying')
        else log.debug({ err: errorText(err), failures }, 'redis-streams: still cannot consume')
      }
    }).catch((err: unknown) => { log.error({ err }, 'redis-streams: the consumer loop failed') })
  }

  isReady (): boolean {
    if (!this.started || this.stopping || this.options.writer.status !== 'ready') return false
    if (this.options.processor.subscriptions().length === 0) return true
    return this.consuming && this.options.reader.status === 'ready'
  }

  /** XADD `data` (and `fields`) to `stream`, trimmed to about `maxLen` entries; resolves with the entry id. */
  async add (stream: string, data: string | Buffer, fields: Record<string, string>, maxLen?: number): Promise<string> {
    const { writer } = this.options
    if (this.stopped !== null) throw new GatewayErrors.STREAM_UNAVAILABLE('redis-streams', 'the connection is closed')
    if (writer.status !== 'ready') throw new GatewayErrors.STREAM_UNAVAILABLE('redis-streams', `not connected (${writer.status})`)
    const args: Array<string | Buffer | number> = [stream]
    if (maxLen !== undefined) args.push('MAXLEN', '~', maxLen)
    args.push('*', 'data', data)
    for (const [name, value] of Object.entries(fields)) args.push(name, value)
    const adding = writer.xadd(...(args as [string, ...Array<string | Buffer | number>])) as Promise<string>
    this.pendingEmits.add(adding)
    const forget = () => { this.pendingEmits.delete(adding) }
    adding.then(forget, forget)
    return await adding
  }

  /**
   * The dead letter of `entry` on `destination` (`data`, `error`, `source` and more) and the XACK of the original, in
   * one script: a failed XADD (a key of another type, out of memory) acknowledges nothing. (MULTI would still run
   * the XACK after a failed XADD.)
   */
  async deadLetter (entry: RawEntry, failure: Failure, destination: string): Promise<void> {
    const { writer, group } = this.options
    const data = entry.fields.find(([name]) => name === 'data')?.[1] ?? Buffer.alloc(0)
    const args: Array<string | Buffer> = []
    for (const [name, value] of entry.fields) {
      if (!DLQ_FIELDS.has(name)) args.push(name, value)
    }
    args.push('data', data, 'error', failure.error, 'error-type', failure.type, 'attempts', String(failure.attempts), 'source', entry.stream, 'id', entry.id)
    await writer.eval(DEAD_LETTER, 2, destination, entry.stream, group, entry.id, ...args)
  }

  stop (): Promise<void> {
    if (this.stopped !== null) return this.stopped
    this.stopping = true
    this.abort.abort()
    this.stopped = (async () => {
      const { log, closeTimeoutMs, reader, writer } = this.options
      const deadline = Date.now() + closeTimeoutMs
      const drained = (async () => {
        await this.inFlight
        // a blocked XREADGROUP holds the reader: what it returns now stays pending (claimed later)
        reader.disconnect()
        await this.loop
        await Promise.allSettled([...this.pendingEmits])
      })()
      if (!(await settlesBy(drained, deadline))) {
        log.warn({ timeoutMs: closeTimeoutMs }, 'redis-streams: close gave up waiting; what was not acknowledged is claimed again')
      }
      reader.disconnect()
      await settlesBy(this.leaveGroup(), Math.max(deadline, Date.now() + 500))
      if (this.options.ownWriter) {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([writer.quit().catch(() => {}), new Promise<void>((resolve) => { timer = setTimeout(resolve, 500) })])
        clearTimeout(timer)
        writer.disconnect()
      }
      this.consuming = false
    })()
    return this.stopped
  }

  /** On a clean close, a consumer that holds nothing leaves its group (no trace of each restart in XINFO CONSUMERS). */
  private async leaveGroup (): Promise<void> {
    const { writer, group, consumer } = this.options
    if (writer.status !== 'ready') return
    for (const key of this.keys) {
      const pending = await writer.xpending(key, group, '-', '+', 1, consumer).catch(() => null) as unknown[] | null
      if (pending !== null && pending.length === 0) await writer.xgroup('DELCONSUMER', key, group, consumer).catch(() => {})
    }
  }

  private async round (): Promise<boolean> {
    const { reader, processor } = this.options
    await this.whenReady()
    if (this.stopping) return false
    const patterns = processor.subscriptions()
    if (patterns.length === 0) {
      this.consuming = true
      await sleep(2 ** 31 - 1, this.abort.signal)
      return true
    }
    this.keys = await this.resolveKeys(patterns)
    if (this.keys.length === 0) throw new Error('no stream matches the RegExp handlers (and no stream key was given)')
    for (const key of this.keys) {
      await reader.xgroup('CREATE', key, this.options.group, this.options.fromBeginning ? '0' : '$', 'MKSTREAM').catch((err: unknown) => {
        if (!errorText(err).includes('BUSYGROUP')) throw err
      })
    }
    this.consuming = true
    this.options.log.info({ streams: this.keys, group: this.options.group, consumer: this.options.consumer }, 'redis-streams: consuming')
    // this consumer's own pending entries first: a restart under the same name takes them back at once
    await this.handleAll(await this.read('0', 0), true)
    while (!this.stopping) {
      if (Date.now() >= this.nextClaim) {
        this.nextClaim = Date.now() + Math.max(50, Math.floor(this.options.claimMs / 2))
        await this.claimIdle()
      }
      await this.retryDue()
      if (this.stopping) break
      const untilRetry = Math.min(...[...this.retries.values()].map((r) => r.due - Date.now()), this.nextClaim - Date.now())
      const block = Math.max(1, Math.min(this.options.blockMs, untilRetry))
      await this.handleAll(await this.read('>', block), false)
    }
    return true
  }

  private async whenReady (): Promise<void> {
    const { reader, writer } = this.options
    const deadline = Date.now() + 2000
    while (!this.stopping && (reader.status !== 'ready' || writer.status !== 'ready')) {
      if (Date.now() > deadline) throw new Error(`redis is not connected (${reader.status})`)
      await sleep(20, this.abort.signal)
    }
  }

  private async resolveKeys (patterns: Array<string | RegExp>): Promise<string[]> {
    const keys = new Set(patterns.filter((p): p is string => typeof p === 'string'))
    const regexps = patterns.filter((p): p is RegExp => p instanceof RegExp)
    if (regexps.length > 0) {
      const { reader, processor } = this.options
      let cursor = '0'
      do {
        const [next, found] = await reader.scan(cursor, 'COUNT', 1000, 'TYPE', 'stream')
        cursor = next
        for (const key of found) {
          if (!processor.syntax.isDeadLetter(key) && regexps.some((re) => re.test(key))) keys.add(key)
        }
      } while (cursor !== '0')
    }
    return [...keys]
  }

  /** XREADGROUP from `id` ('>' new entries, '0' this consumer's pending ones). */
  private async read (id: string, block: number): Promise<RawEntry[]> {
    const { reader, group, consumer, count } = this.options
    const args: Array<string | number> = ['GROUP', group, consumer, 'COUNT', count]
    if (block > 0) args.push('BLOCK', block)
    args.push('STREAMS', ...this.keys, ...this.keys.map(() => id))
    const reply = await (reader.xreadgroupBuffer as unknown as Command).call(reader, ...args) as Array<[Buffer, Array<[Buffer, Buffer[] | null]>]> | null
    const entries: RawEntry[] = []
    for (const [key, items] of reply ?? []) {
      for (const [entryId, flat] of items) {
        // a pending entry deleted from the stream comes back without fields: nothing to handle
        if (flat === null) {
          await this.options.writer.xack(key.toString(), group, entryId.toString()).catch(() => {})
          continue
        }
        entries.push({ stream: key.toString(), id: entryId.toString(), fields: pairs(flat) })
      }
    }
    return entries
  }

  /** Claims the entries idle for `claimMs` in every stream (other instances' that stopped, or this one's). */
  private async claimIdle (): Promise<void> {
    const { reader, group, consumer, claimMs, count } = this.options
    for (const key of this.keys) {
      let cursor = '0-0'
      for (let pass = 0; pass < 10 && !this.stopping; pass++) {
        const reply = await (reader as unknown as Record<string, Command>).xautoclaimBuffer.call(reader, key, group, consumer, claimMs, cursor, 'COUNT', count) as [Buffer, Array<[Buffer, Buffer[] | null]>]
        cursor = reply[0].toString()
        const entries: RawEntry[] = []
        for (const [id, flat] of reply[1]) {
          if (flat !== null) entries.push({ stream: key, id: id.toString(), fields: pairs(flat) })
        }
        if (entries.length > 0) {
          this.options.log.info({ stream: key, count: entries.length }, 'redis-streams: claimed entries left pending by a consumer that stopped')
          await this.handleAll(entries, true)
        }
        if (cursor === '0-0') break
      }
    }
  }

  /** Takes back the entries whose retry is due (XCLAIM counts a delivery; an entry another instance took meanwhile stays theirs). */
  private async retryDue (): Promise<void> {
    const { reader, group, consumer } = this.options
    const now = Date.now()
    for (const [key, retry] of this.retries) {
      if (retry.due > now || this.stopping) continue
      this.retries.delete(key)
      const reply = await (reader as unknown as Record<string, Command>).xclaimBuffer.call(reader, retry.stream, group, consumer, retry.delay, retry.id) as Array<[Buffer, Buffer[] | null]>
      const entries: RawEntry[] = []
      for (const [id, flat] of reply) {
        if (flat !== null) entries.push({ stream: retry.stream, id: id.toString(), fields: pairs(flat) })
      }
      await this.handleAll(entries, true)
    }
  }

  /** Handles entries one by one; `counted`: their delivery counts are asked from XPENDING (else they are first deliveries). */
  private async handleAll (entries: RawEntry[], counted: boolean): Promise<void> {
    if (entries.length === 0) return
    const counts = counted ? await this.deliveryCounts(entries) : null
    for (const entry of entries) {
      if (this.stopping) return
      this.retries.delete(`${entry.stream}:${entry.id}`)
      this.inFlight = this.handle(entry, counts?.get(`${entry.stream}:${entry.id}`) ?? 1)
      await this.inFlight
      this.inFlight = null
    }
  }

  private async deliveryCounts (entries: RawEntry[]): Promise<Map<string, number>> {
    const { reader, group, consumer } = this.options
    const counts = new Map<string, number>()
    const byStream = new Map<string, string[]>()
    for (const entry of entries) byStream.set(entry.stream, [...(byStream.get(entry.stream) ?? []), entry.id])
    for (const [stream, ids] of byStream) {
      const rows = await reader.xpending(stream, group, ids[0], ids[ids.length - 1], ids.length, consumer) as Array<[string, string, number, number]>
      for (const [id, , , count] of rows) counts.set(`${stream}:${id}`, Number(count))
    }
    return counts
  }

  private async handle (entry: RawEntry, attempt: number): Promise<void> {
    const { processor, writer, group, consumer, claimMs, log } = this.options
    const data = entry.fields.find(([name]) => name === 'data')?.[1]
    const fields: Record<string, string> = {}
    for (const [name, value] of entry.fields) if (name !== 'data') fields[name] = value.toString('utf8')
    const delivery: Delivery<RedisStreamFields, RawEntry> = {
      source: entry.stream,
      payload: data === undefined || data.length === 0 ? null : data,
      fields: { stream: entry.stream, id: entry.id, fields },
      where: { stream: entry.stream, id: entry.id },
      attempt,
      id: `${entry.stream}:${entry.id}`,
      raw: entry
    }
    // a running handler keeps its entry from being claimed: its idle time starts over (JUSTID counts no delivery)
    const stopBeat = keepAlive(Math.max(50, Math.floor(claimMs / 3)), () => writer.xclaim(entry.stream, group, consumer, 0, entry.id, 'JUSTID'))
    try {
      const outcome = await processor.process(delivery, this.abort.signal)
      if (outcome === 'handled' || outcome === 'ignored') this.ack(entry)
      else if (outcome === 'retry') this.scheduleRetry(entry, processor.retryDelay(attempt))
      // dead-lettered: acknowledged with its dead letter; abandoned: left pending, claimed again later
    } catch (err) {
      log.error({ err, stream: entry.stream, id: entry.id }, 'redis-streams: an entry could not be handled nor dead-lettered; it is tried again')
      this.scheduleRetry(entry, processor.retryDelay(attempt))
    } finally {
      stopBeat()
    }
  }

  /**
   * XACK without waiting for its reply before the next entry (the acknowledgements are pipelined on the writer; close
   * waits for them). One that fails leaves the entry pending: it is claimed again, at least once.
   */
  private ack (entry: RawEntry): void {
    const { writer, group, log } = this.options
    const acking = writer.xack(entry.stream, group, entry.id).catch((err: unknown) => {
      log.warn({ err: { message: errorText(err) }, stream: entry.stream, id: entry.id }, 'redis-streams: XACK failed; the entry will be claimed again')
    })
    this.pendingEmits.add(acking)
    void acking.then(() => { this.pendingEmits.delete(acking) })
  }

  private scheduleRetry (entry: RawEntry, delay: number): void {
    this.retries.set(`${entry.stream}:${entry.id}`, { stream: entry.stream, id: entry.id, due: Date.now() + delay, delay })
  }
}

/** ioredis's Buffer-reply commands, called with a plain argument list */
type Command = (...args: Array<string | number>) => Promise<unknown>

/** KEYS: dead-letter stream, original stream; ARGV: group, entry id, then the dead letter's field/value pairs. */
const DEAD_LETTER = `
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
`

/** Fields a dead letter sets itself (the original's fields of these names are replaced). */
const DLQ_FIELDS = new Set(['data', 'error', 'error-type', 'attempts', 'source', 'id'])

function pairs (flat: Buffer[]): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i].toString('utf8'), flat[i + 1]])
  return out
}
