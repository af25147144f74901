import { execFileSync } from 'node:child_process'

/**
 * Tests that need a system tool (chromium, kcat, redis-server) call this first. Locally a missing tool skips the
 * test with a loud reason; under CI (CI=true) it fails, because CI must run everything.
 */
export function toolPath (name: string, candidates: string[] = []): string | null {
  for (const path of candidates) {
    try {
      execFileSync('test', ['-x', path])
      return path
    } catch {}
  }
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

/** The part of a tap Test that requireTool uses (tap's `skip` is overloaded, hence the loose signature). */
export interface SkippableTest {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tap's skip/fail are overloaded
  skip: (...args: any[]) => unknown
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
  fail: (...args: any[]) => unknown
}

export function requireTool (t: SkippableTest, name: string, candidates: string[] = []): string | null {
  const path = toolPath(name, candidates)
  if (path !== null) return path
  const reason = `${name} is not installed (.ci/run installs it with apt-get)`
  if (process.env.CI === 'true') {
    t.fail(`${reason}: CI must run this test`)
  } else {
    process.stderr.write(`\n!!! SKIPPED: ${reason}\n\n`)
    t.skip(`SKIPPED: ${reason}`)
  }
  return null
}
