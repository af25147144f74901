// The benchmarks measure the gateways as users run them: the JavaScript `tsc` emits for the package (what `npm run
// build` puts in dist/), not the sources through tsx. tsx's esbuild transform keeps function names by wrapping every
// closure in `__name(fn, "...")`, which gives each closure object its own `name` property: more heap per connection
// (about 0.5 KB at the gateway's per-connection closures) and more CPU than the shipped code has.
//
// `packageDir()` compiles the package once per benchmark run into node_modules/.cache/fastify-gateways-bench (inside
// the project, so its imports resolve to the project's node_modules) and returns that directory; the server workers
// import the gateways from it (env BENCH_PACKAGE_DIR). BENCH_SOURCE=ts runs the TypeScript sources through tsx instead.
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './proc.js'

export const PACKAGE_DIR_ENV = 'BENCH_PACKAGE_DIR'

let built: string | null = null

/** Compiles the package (tsc, tsconfig.build.json, no declarations) unless BENCH_SOURCE=ts; the directory or null. */
export function packageDir (): string | null {
  if (process.env.BENCH_SOURCE === 'ts') return null
  if (built !== null) return built
  const out = join(ROOT, 'node_modules', '.cache', 'fastify-gateways-bench')
  rmSync(out, { recursive: true, force: true })
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out, '--declaration', 'false', '--sourceMap', 'false'], {
    cwd: ROOT, encoding: 'utf8'
  })
  if (result.status !== 0) throw new Error(`building the package for the benchmark failed:\n${result.stdout}${result.stderr}`)
  built = out
  process.env[PACKAGE_DIR_ENV] = out // inherited by the server workers
  return out
}

/** In a server worker: the URL of the package's compiled `file` (e.g. 'plugins/ws.js'), or of its TypeScript source. */
export function packageModule (file: string): string {
  const dir = process.env[PACKAGE_DIR_ENV]
  return dir === undefined || dir === '' ? new URL(`../../${file}`, import.meta.url).href : new URL(`file://${join(dir, file)}`).href
}
