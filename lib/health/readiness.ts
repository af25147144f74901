/** A readiness check: true while the dependency it watches is usable. May be async; throwing counts as not ready. */
export type ReadinessCheck = () => boolean | Promise<boolean>

export interface ReadinessResult {
  ready: boolean
  /** names of the checks that failed, in the order they were added */
  failing: string[]
}

/**
 * The readiness checks of one app, by dependency name (`kafka`, `redis`, `mqtt`...): each gateway adds its own when
 * it is registered, and `/ready` asks them all. Several checks may share a name (two Kafka gateways): the name
 * passes when all of them do. A check that throws, rejects or takes longer than `timeoutMs` fails.
 */
export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck[]>()

  /** Adds `check` under `name`; returns a function that takes it away again. */
  add (name: string, check: ReadinessCheck): () => void {
    const list = this.checks.get(name) ?? []
    list.push(check)
    this.checks.set(name, list)
    return () => {
      const at = list.indexOf(check)
      if (at !== -1) list.splice(at, 1)
      if (list.length === 0 && this.checks.get(name) === list) this.checks.delete(name)
    }
  }

  /** Names of the dependencies checked. */
  names (): string[] {
    return [...this.checks.keys()]
  }

  async evaluate (timeoutMs: number, extra: Record<string, ReadinessCheck> = {}): Promise<ReadinessResult> {
    const entries: Array<[string, ReadinessCheck]> = []
    for (const [name, list] of this.checks) for (const check of list) entries.push([name, check])
    for (const [name, check] of Object.entries(extra)) entries.push([name, check])
    const results = await Promise.all(entries.map(async ([, check]) => await passes(check, timeoutMs)))
    const failing: string[] = []
    entries.forEach(([name], i) => { if (!results[i] && !failing.includes(name)) failing.push(name) })
    return { ready: failing.length === 0, failing }
  }
}

async function passes (check: ReadinessCheck, timeoutMs: number): Promise<boolean> {
  let result: boolean | Promise<boolean>
  try {
    result = check()
  } catch {
    return false
  }
  if (typeof result === 'boolean') return result
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => {
    // not unref()ed: it is cleared as soon as the check answers, and bounds a request that waits for it
    timer = setTimeout(() => { resolve(false) }, timeoutMs)
  })
  try {
    return await Promise.race([Promise.resolve(result).then((ok) => ok === true, () => false), late])
  } finally {
    clearTimeout(timer)
  }
}
