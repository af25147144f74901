import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireTool } from './tools.js'

type TapLike = Parameters<typeof requireTool>[0] & { after: (fn: () => unknown) => void }

/** One sample of a text exposition: `name{labels} value`. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a Prometheus text exposition (comments skipped). */
export function parseExposition (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (match === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2]
    out.push({ name: match[1], labels, value: Number(match[3]) })
  }
  return out
}

/** The value of the sample `name` whose labels include `labels`; throws when there is none. */
export function valueOf (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)}`)
  return found.value
}

/** `promtool check metrics` over `text`: its exit status and the problem lines it printed. */
export function promtoolCheck (promtool: string, text: string): { status: number, problems: string[] } {
  const result = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 })
  const problems = `${result.stdout}\n${result.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  return { status: result.status ?? -1, problems }
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}

// kills prometheus when this process's end of the pipe closes (teardown, or the test runner dying)
const WATCHDOG = ['"$@" </dev/null &', 'pid=$!', 'cat >/dev/null', 'kill -9 "$pid" 2>/dev/null', 'wait "$pid" 2>/dev/null', 'exit 0'].join('\n')

export interface PrometheusServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** an instant query through the HTTP API: the `data.result` array */
  query (expr: string): Promise<Array<{ metric: Record<string, string>, value: [number, string] }>>
  readonly output: () => string
}

/**
 * A real Prometheus server (Debian's `prometheus`) on loopback that scrapes `target` (`127.0.0.1:<port>`) every
 * second, with a Bearer token when given; killed in `t.after`. Null when prometheus is missing (skip; fail in CI).
 */
export async function startPrometheus (t: TapLike, options: { target: string, token?: string, metricsPath?: string }): Promise<PrometheusServer | null> {
  const binary = requireTool(t, 'prometheus', ['/usr/bin/prometheus'])
  if (binary === null) return null
  const dir = await mkdtemp(join(tmpdir(), 'gw-prom-'))
  const port = await freePort()
  const auth = options.token === undefined ? '' : `\n    authorization:\n      type: Bearer\n      credentials: ${JSON.stringify(options.token)}`
  await writeFile(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: gateways',
    `    metrics_path: ${options.metricsPath ?? '/metrics'}${auth}`,
    '    static_configs:',
    `      - targets: ['${options.target}']`,
    ''
  ].join('\n'))
  const child = spawn('sh', ['-c', WATCHDOG, 'prom-watchdog', binary,
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'
  ], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-8000) })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  t.after(async () => {
    child.stdin.end()
    await exited
    await rm(dir, { recursive: true, force: true })
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then((res) => res.ok, () => false)
    if (ready) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not start: ${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url,
    output: () => output,
    async query (expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)
      const body = await res.json() as { status: string, data: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }
      if (body.status !== 'success') throw new Error(`query ${expr} failed: ${JSON.stringify(body)}`)
      return body.data.result
    }
  }
}
