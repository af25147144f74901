import type { SseStream } from './stream.js'

/**
 * The open streams of one SSE gateway and their heartbeat: one timer for all of them (`: ping` every
 * `heartbeatMs`), running only while a stream is open, so an idle gateway holds no timer.
 */
export class SseHub {
  private readonly streams = new Set<SseStream>()
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly heartbeatMs: number) {}

  get size (): number {
    return this.streams.size
  }

  /** true while the heartbeat timer exists (for leak checks) */
  get beating (): boolean {
    return this.timer !== null
  }

  add (stream: SseStream): void {
    this.streams.add(stream)
    if (this.timer === null) {
      this.timer = setInterval(() => { this.beat() }, this.heartbeatMs)
      this.timer.unref()
    }
  }

  delete (stream: SseStream): void {
    this.streams.delete(stream)
    if (this.streams.size === 0) this.stop()
  }

  /** Ends every stream (shutdown) and stops the heartbeat. */
  closeAll (): void {
    for (const stream of [...this.streams]) stream.close('shutdown')
    this.streams.clear()
    this.stop()
  }

  private beat (): void {
    for (const stream of this.streams) stream.ping()
  }

  private stop (): void {
    if (this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }
}
