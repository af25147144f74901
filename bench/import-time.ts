// Import cost of the package's entry points, each in a fresh Node process: wall and CPU time of `await import(...)`,
// median and minimum of N runs, and the packages each entry point loads (seen through a module resolve hook).
//
//   npm run build && node --import tsx bench/import-time.ts [runs=9]
//
// CPU time is the steadier figure on a shared machine; wall time includes waiting for a core.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const runs = Number(process.argv[2] ?? 9)
const root = fileURLToPath(new URL('..', import.meta.url))
const entries = { 'fastify-gateways': 'dist/index.js', 'fastify-gateways/ws': 'dist/plugins/ws.js' }
const work = mkdtempSync(join(tmpdir(), 'fg-import-'))

writeFileSync(join(work, 'hook.mjs'), `
let port
export function initialize (data) { port = data.port }
export async function resolve (specifier, context, next) {
  const result = await next(specifier, context)
  port.postMessage(result.url)
  return result
}`)
writeFileSync(join(work, 'time.mjs'), `
const c0 = process.cpuUsage(); const t0 = performance.now()
await import(process.argv[2])
const cpu = process.cpuUsage(c0)
console.log(JSON.stringify({ wall: performance.now() - t0, cpu: (cpu.user + cpu.system) / 1000 }))`)
writeFileSync(join(work, 'packages.mjs'), `
import { register, createRequire } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
const { port1, port2 } = new MessageChannel()
const urls = []
port1.on('message', (url) => urls.push(url))
port1.unref()
register(new URL('./hook.mjs', import.meta.url), { data: { port: port2 }, transferList: [port2] })
await import(process.argv[2])
await new Promise((resolve) => setTimeout(resolve, 50))
const names = new Set()
for (const path of [...urls, ...Object.keys(createRequire(import.meta.url).cache)]) {
  const match = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(path)
  if (match) names.add(match[1])
}
console.log(JSON.stringify([...names].sort()))`)

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const samples: Record<string, Array<{ wall: number, cpu: number }>> = {}
for (let i = 0; i < runs; i++) {
  // interleaved, so a burst of load on the machine hits every entry point alike
  for (const [name, file] of Object.entries(entries)) {
    const out = execFileSync(process.execPath, [join(work, 'time.mjs'), pathToFileURL(join(root, file)).href], { encoding: 'utf8' })
    ;(samples[name] ??= []).push(JSON.parse(out) as { wall: number, cpu: number })
  }
}
for (const [name, file] of Object.entries(entries)) {
  const list = samples[name]
  const packages = JSON.parse(execFileSync(process.execPath, [join(work, 'packages.mjs'), pathToFileURL(join(root, file)).href], { encoding: 'utf8' })) as string[]
  const wall = list.map((s) => s.wall)
  const cpu = list.map((s) => s.cpu)
  console.log(`${name.padEnd(22)} cpu median ${median(cpu).toFixed(0)} ms (min ${Math.min(...cpu).toFixed(0)}), wall median ${median(wall).toFixed(0)} ms (min ${Math.min(...wall).toFixed(0)}); loads ${packages.join(', ')}`)
}
rmSync(work, { recursive: true, force: true })
