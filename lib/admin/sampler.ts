import type { CountersSnapshot, GatewayCounters } from '../metrics/counters.js'

/** One reading of the totals the dashboard turns into rates. */
export interface Sample {
  /** ms since the Unix epoch */
  at: number
  published: number
  /** deliveries summed over the transports */
  delivered: number
  counters: CountersSnapshot
}

export interface Rates {
  /** events published per second on this instance */
  published: number
  /** deliveries per second, all transports */
  delivered: number
  /** deliveries per second per transport */
  deliveries: Record<string, number>
  /** over how many seconds (0 until two samples exist) */
  windowS: number
}

export interface SamplerOptions {
  /** ms between samples */
  intervalMs: number
  /** samples kept (the series of the dashboard's charts) */
  keep: number
  /** rates are taken over this many ms */
  windowMs: number
  /** the sampler stops this long after the last `touch()` */
  idleMs: number
  now?: () => number
}

/**
 * Samples the counters every `intervalMs` while the dashboard is looked at (each API call `touch()`es it; it stops
 * after `idleMs` without one), so rates and the last minute's series cost nothing when nobody watches.
 */
export class CountersSampler {
  private readonly samples: Sample[] = []
  private timer: NodeJS.Timeout | null = null
  private lastTouch = 0
  private readonly now: () => number

  constructor (private readonly counters: GatewayCounters, private readonly options: SamplerOptions) {
    this.now = options.now ?? Date.now
  }

  /** true while sampling */
  get running (): boolean {
    return this.timer !== null
  }

  /** Someone looks: sample now if the last sample is older than an interval, and keep sampling. */
  touch (): void {
    this.lastTouch = this.now()
    const last = this.samples[this.samples.length - 1]
    if (last === undefined || this.lastTouch - last.at >= this.options.intervalMs) this.sample()
    if (this.timer === null) {
      this.timer = setInterval(() => { this.tick() }, this.options.intervalMs)
      this.timer.unref()
    }
  }

  /** The kept samples, oldest first. */
  series (): readonly Sample[] {
    return this.samples
  }

  /** Rates over the last `windowMs` (from the newest sample back to the oldest within the window). */
  rates (): Rates {
    const last = this.samples[this.samples.length - 1]
    if (last === undefined) return { published: 0, delivered: 0, deliveries: {}, windowS: 0 }
    let first = last
    for (let i = this.samples.length - 2; i >= 0; i--) {
      if (last.at - this.samples[i].at > this.options.windowMs) break
      first = this.samples[i]
    }
    const seconds = (last.at - first.at) / 1000
    const per = (a: number, b: number) => seconds > 0 ? Math.max(0, (b - a) / seconds) : 0
    const deliveries: Record<string, number> = {}
    for (const [transport, value] of Object.entries(last.counters.deliveries)) {
      deliveries[transport] = per(first.counters.deliveries[transport] ?? 0, value)
    }
    return { published: per(first.published, last.published), delivered: per(first.delivered, last.delivered), deliveries, windowS: seconds }
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  private tick (): void {
    if (this.now() - this.lastTouch > this.options.idleMs) {
      this.stop()
      return
    }
    this.sample()
  }

  private sample (): void {
    const counters = this.counters.snapshot()
    let delivered = 0
    for (const value of Object.values(counters.deliveries)) delivered += value
    this.samples.push({ at: this.now(), published: counters.eventsPublished, delivered, counters })
    if (this.samples.length > this.options.keep) this.samples.splice(0, this.samples.length - this.options.keep)
  }
}
