// Reading V8 heap snapshots (`.heapsnapshot`, as written by v8.writeHeapSnapshot) for the memory profile of
// bench/ws-profile.ts: the self size of every object grouped by what it is (constructor, closure name, string...),
// the difference between two snapshots divided by the connections opened in between (bytes per connection, by kind),
// and who holds the objects of a kind (the retaining edges, grouped).
import { readFileSync } from 'node:fs'

interface Snapshot {
  nodeTypes: string[]
  edgeTypes: string[]
  nodeFieldCount: number
  edgeFieldCount: number
  nodes: Uint32Array
  edges: Uint32Array
  strings: string[]
  /** index into `nodes` of each node's first edge */
  firstEdge: Uint32Array
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]], edge_fields: string[], edge_types: [string[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

const NODE_TYPE = 0
const NODE_NAME = 1
const NODE_SELF = 3
const NODE_EDGES = 4
const EDGE_TYPE = 0
const EDGE_NAME = 1
const EDGE_TO = 2

export function readSnapshot (file: string): Snapshot {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot
  const meta = raw.snapshot.meta
  if (meta.node_fields[NODE_TYPE] !== 'type' || meta.node_fields[NODE_NAME] !== 'name' || meta.node_fields[NODE_SELF] !== 'self_size' ||
    meta.node_fields[NODE_EDGES] !== 'edge_count' || meta.edge_fields[EDGE_TO] !== 'to_node') {
    throw new Error(`unexpected heap snapshot layout: ${meta.node_fields.join(',')} / ${meta.edge_fields.join(',')}`)
  }
  const nodes = Uint32Array.from(raw.nodes)
  const nodeFieldCount = meta.node_fields.length
  const count = nodes.length / nodeFieldCount
  const firstEdge = new Uint32Array(count + 1)
  const edgeFieldCount = meta.edge_fields.length
  let e = 0
  for (let i = 0; i < count; i++) {
    firstEdge[i] = e
    e += nodes[i * nodeFieldCount + NODE_EDGES] * edgeFieldCount
  }
  firstEdge[count] = e
  return {
    nodeTypes: meta.node_types[0],
    edgeTypes: meta.edge_types[0],
    nodeFieldCount,
    edgeFieldCount,
    nodes,
    edges: Uint32Array.from(raw.edges),
    strings: raw.strings,
    firstEdge
  }
}

/** What a node is, for grouping: "Foo" for an object of class Foo, "closure onMessage", "string", "array", ... */
function kindOf (s: Snapshot, node: number): string {
  const base = node * s.nodeFieldCount
  const type = s.nodeTypes[s.nodes[base + NODE_TYPE]]
  const name = s.strings[s.nodes[base + NODE_NAME]]
  switch (type) {
    case 'object': return name
    case 'closure': return `closure ${name === '' ? '(anonymous)' : name}`
    case 'native': return `native ${name.replace(/ \/ .*/, '')}`
    case 'array': return `array ${name}`
    case 'hidden': return `hidden ${name.replace(/ \(.*/, '')}`
    case 'code': return 'code'
    case 'concatenated string': case 'sliced string': case 'string': return 'string'
    case 'object shape': return 'object shape'
    default: return type
  }
}

export interface Group { kind: string, count: number, bytes: number }

/** Self sizes and counts of every node, by kind. */
export function summarize (s: Snapshot): Map<string, Group> {
  const groups = new Map<string, Group>()
  const count = s.nodes.length / s.nodeFieldCount
  for (let i = 0; i < count; i++) {
    const kind = kindOf(s, i)
    let g = groups.get(kind)
    if (g === undefined) {
      g = { kind, count: 0, bytes: 0 }
      groups.set(kind, g)
    }
    g.count++
    g.bytes += s.nodes[i * s.nodeFieldCount + NODE_SELF]
  }
  return groups
}

/** `after - before` per kind, divided by `per` (the connections opened in between); largest first. */
export function difference (before: Map<string, Group>, after: Map<string, Group>, per: number): Group[] {
  const out: Group[] = []
  for (const [kind, a] of after) {
    const b = before.get(kind)
    out.push({ kind, count: (a.count - (b?.count ?? 0)) / per, bytes: (a.bytes - (b?.bytes ?? 0)) / per })
  }
  return out.sort((x, y) => y.bytes - x.bytes)
}

/**
 * For each node of `kind`: the kinds and edge names that point to it (its retainers, weak edges left out), counted.
 * Answers "who keeps the ServerResponse alive".
 */
export function retainers (s: Snapshot, kind: string, limit = 8): Array<{ from: string, edge: string, count: number }> {
  const count = s.nodes.length / s.nodeFieldCount
  const targets = new Uint8Array(count)
  for (let i = 0; i < count; i++) if (kindOf(s, i) === kind) targets[i] = 1
  const seen = new Map<string, number>()
  const weak = s.edgeTypes.indexOf('weak')
  for (let i = 0; i < count; i++) {
    for (let e = s.firstEdge[i]; e < s.firstEdge[i + 1]; e += s.edgeFieldCount) {
      const to = s.edges[e + EDGE_TO] / s.nodeFieldCount
      if (targets[to] !== 1) continue
      const type = s.edges[e + EDGE_TYPE]
      if (type === weak) continue
      const typeName = s.edgeTypes[type]
      const nameOrIndex = s.edges[e + EDGE_NAME]
      const edge = typeName === 'element' || typeName === 'hidden' ? `[${typeName}]` : String(s.strings[nameOrIndex])
      const key = `${kindOf(s, i)}\u0000${edge}`
      seen.set(key, (seen.get(key) ?? 0) + 1)
    }
  }
  return [...seen.entries()]
    .map(([key, n]) => {
      const [from, edge] = key.split('\u0000')
      return { from, edge, count: n }
    })
    .sort((a, b) => b.count - a.count)
    .slice(0, limit)
}
