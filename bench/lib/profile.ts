// Reading V8 CPU profiles (`.cpuprofile`, from the server worker's profileStart/profileStop) for bench/ws-profile.ts:
// self time by function, and by where the code lives (this project, a package of node_modules, Node's internals,
// the garbage collector...), as shares of the profile's samples.
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT } from './proc.js'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

/** A file of the compiled package (bench/lib/build.ts) as the project file it came from. */
function projectPath (path: string): string {
  return path.replace(/node_modules\/\.cache\/fastify-gateways-bench\//, '')
}

export interface Hot { name: string, us: number, share: number }

/** Where a frame's code lives: a project file, `node_modules/<package>`, `node:<internal>`, or V8's pseudo-frames. */
function placeOf (frame: CallFrame): string {
  const url = frame.url
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)'
  if (url.startsWith('node:')) return 'node internals'
  const path = projectPath(url.startsWith('file:') ? fileURLToPath(url) : url)
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)
  if (pkg !== null) return pkg[1]
  return relative(ROOT, path)
}

function labelOf (frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  if (frame.url === '') return name
  const url = projectPath(frame.url.startsWith('file:') ? fileURLToPath(frame.url) : frame.url)
  const file = url.startsWith('node:') ? url : /node_modules\//.test(url) ? url.replace(/.*node_modules\//, '') : relative(ROOT, url)
  return `${name} ${file}:${frame.lineNumber + 1}`
}

export interface ProfileSummary {
  totalUs: number
  functions: Hot[]
  places: Hot[]
}

/** Self time by function and by place, largest first. Idle samples and the profiler's own are left out of the total. */
export function summarizeProfile (file: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
  const functions = new Map<string, number>()
  const places = new Map<string, number>()
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i])
    const us = profile.timeDeltas[i] ?? 0
    // (idle): waiting for I/O; `dispatch` (native): the inspector session handling Profiler.stop itself
    if (frame === undefined || frame.functionName === '(idle)' || (frame.functionName === 'dispatch' && frame.url === '')) continue
    total += us
    const label = labelOf(frame)
    functions.set(label, (functions.get(label) ?? 0) + us)
    const place = placeOf(frame)
    places.set(place, (places.get(place) ?? 0) + us)
  }
  const list = (m: Map<string, number>) => [...m.entries()].map(([name, us]) => ({ name, us, share: us / total })).sort((a, b) => b.us - a.us)
  return { totalUs: total, functions: list(functions), places: list(places) }
}
