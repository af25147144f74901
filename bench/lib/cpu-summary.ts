// Summarises a .cpuprofile (from bench/lib/cpu-profile.ts): self time per function and per package or folder, the
// biggest first. node --import tsx bench/lib/cpu-summary.ts <file.cpuprofile> [rows]
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
const [file, rowsArg] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }
const rows = Number(rowsArg ?? 30)
const self = new Map<number, number>()
profile.samples.forEach((id, i) => { self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)) })
const byFunction = new Map<string, number>()
const byPlace = new Map<string, number>()
let total = 0
for (const node of profile.nodes) {
  const us = self.get(node.id) ?? 0
  total += us
  const { functionName, url, lineNumber } = node.callFrame
  const where = url.replace(/^file:\/\//, '').replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1').replace(/^.*\/(lib|plugins|routes)\//, '$1/')
  byFunction.set(`${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`, (byFunction.get(`${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`) ?? 0) + us)
  const place = url === '' ? `(${functionName})` : where.replace(/:\d+$/, '')
  byPlace.set(place, (byPlace.get(place) ?? 0) + us)
}
const show = (title: string, map: Map<string, number>) => {
  console.log(`\n${title} (total ${(total / 1000).toFixed(0)} ms)`)
  for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${(100 * us / total).toFixed(1).padStart(5)}%  ${name}`)
  }
}
show('self time by package or file', byPlace)
show('self time by function', byFunction)
