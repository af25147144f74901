// npm run bench [-- name ...]: runs each benchmark in its own Node process (fresh heap, its own flags) one after
// the other and prints their tables. Names: the files of bench/ listed below.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const benches: Record<string, { file: string, flags: string[], onlyNamed?: boolean }> = {
  registry: { file: 'registry.ts', flags: ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256'] },
  // fan-out: the driver starts each server (pinned to CPU 0, --expose-gc) and its client processes (CPU 1) itself
  'ws-fanout': { file: 'ws-fanout.ts', flags: [] },
  'sse-fanout': { file: 'sse-fanout.ts', flags: [] },
  'ws-connect': { file: 'ws-connect.ts', flags: [] },
  // profiles of one server kind (docs/benchmarks.md, "WebSocket gateway"); only when named, never part of a plain `npm run bench`
  'ws-profile': { file: 'ws-profile.ts', flags: ['--max-old-space-size=4096'], onlyNamed: true },
  'metrics-fanout': { file: 'metrics-fanout.ts', flags: [] },
  'metrics-scrape': { file: 'metrics-scrape.ts', flags: [] },
  'redis-bus': { file: 'redis-bus.ts', flags: [] },
  'redis-instances': { file: 'redis-instances.ts', flags: [] },
  // per-event cost of the Redis broker: the driver pins its node processes and redis-server itself
  'redis-scale': { file: 'redis-scale.ts', flags: [] },
  // stream gateways: the driver starts the brokers, server.ts (CPU 0) and the baseline consumers (CPU 0) itself
  streams: { file: 'streams.ts', flags: [] }
}

const chosen = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const names = chosen.length > 0 ? chosen : Object.keys(benches).filter((name) => benches[name].onlyNamed !== true)
const dir = fileURLToPath(new URL('.', import.meta.url))
let failed = false
for (const name of names) {
  const bench = benches[name]
  if (bench === undefined) {
    console.error(`unknown benchmark ${name}; choose from ${Object.keys(benches).join(', ')}`)
    process.exit(2)
  }
  console.log(`\n## ${name}: node ${bench.flags.join(' ')} --import tsx bench/${bench.file}`)
  const result = spawnSync(process.execPath, [...bench.flags, '--import', 'tsx', bench.file], { cwd: dir, stdio: 'inherit' })
  if (result.status !== 0) failed = true
}
process.exit(failed ? 1 : 0)
