import { corkForTick } from '../io/cork.js'

/**
 * Where a stream's bytes go: the response's socket (HTTP/1.x, after the head is flushed) or the response itself
 * (HTTP/2). Both are Node writables; only these three calls are used.
 */
export interface SseTarget {
  write (chunk: Buffer): boolean
  once (event: 'drain', listener: () => void): unknown
  removeListener (event: 'drain', listener: () => void): unknown
}

/**
 * Writes a stream's chunks and honours back-pressure: after `write()` returns false nothing more is written until
 * `drain`; chunks meanwhile wait in a queue bounded by `limitBytes`. Past the bound `onOverflow` runs once and the
 * writer takes nothing more: the stream is too slow for the traffic and is better ended (an EventSource reconnects
 * and resumes from its Last-Event-ID) than buffered without limit.
 */
export class SseWriter {
  private queue: Buffer[] = []
  private queuedBytes = 0
  private waiting = false
  private done = false
  private readonly onDrain = () => { this.flush() }

  constructor (
    private readonly target: SseTarget,
    private readonly limitBytes: number,
    private readonly onOverflow: () => void
  ) {}

  /** Bytes waiting for `drain` in this writer (not counting the socket's own buffer). */
  get queued (): number {
    return this.queuedBytes
  }

  /** True while the target has signalled back-pressure and the writer waits for `drain`. */
  get blocked (): boolean {
    return this.waiting
  }

  /**
   * Writes `chunk` now, or queues it while the target is blocked. False once the writer is over its bound or closed.
   * `unbounded` queues past the bound (a resume's replay, which the client cannot get in smaller pieces).
   */
  write (chunk: Buffer, unbounded = false): boolean {
    if (this.done) return false
    if (this.waiting) {
      this.queue.push(chunk)
      this.queuedBytes += chunk.length
      if (!unbounded && this.queuedBytes > this.limitBytes) {
        this.close()
        this.onOverflow()
        return false
      }
      return true
    }
    corkForTick(this.target)
    if (!this.target.write(chunk)) this.wait()
    return true
  }

  /** Stops writing and drops the queue; idempotent. */
  close (): void {
    if (this.done) return
    this.done = true
    this.queue = []
    this.queuedBytes = 0
    if (this.waiting) {
      this.waiting = false
      this.target.removeListener('drain', this.onDrain)
    }
  }

  private wait (): void {
    this.waiting = true
    this.target.once('drain', this.onDrain)
  }

  private flush (): void {
    this.waiting = false
    if (this.done || this.queue.length === 0) return
    // one write for everything that waited: the socket's buffer is empty right after `drain`
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue, this.queuedBytes)
    this.queue = []
    this.queuedBytes = 0
    if (!this.target.write(data)) this.wait()
  }
}
