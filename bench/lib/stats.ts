// Small statistics and formatting helpers of the fan-out benchmarks.
import { spawnSync } from 'node:child_process'
import { cpus, loadavg } from 'node:os'

/** The p-th percentile (0..100) of `values`, nearest rank; NaN when empty. Sorts a copy. */
export function percentile (values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

export function median (values: readonly number[]): number {
  return percentile(values, 50)
}

/** Joins Float64Arrays (the latency samples of several client processes). */
export function concat (parts: ReadonlyArray<ArrayLike<number> | undefined>): Float64Array {
  const total = parts.reduce((sum, part) => sum + (part?.length ?? 0), 0)
  const out = new Float64Array(total)
  let at = 0
  for (const part of parts) {
    if (part === undefined) continue
    out.set(part as ArrayLike<number>, at)
    at += part.length
  }
  return out
}

export function int (n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'
}

export function fixed (n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
}

/** The soft limit of open files this process (and its children) got. */
export function openFileLimit (): number {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()
  return out === 'unlimited' ? Infinity : Number(out)
}

/** One line about the machine: CPUs, Node, load average now. */
export function machineNote (): string {
  const cpu = cpus()
  const load = loadavg().map((l) => l.toFixed(2)).join(' ')
  return `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, load average ${load}`
}

export function loadNow (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' ')
}
