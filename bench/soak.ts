// npm run soak [-- --slow-readers]: the long soak of docs/security.md, not run in CI.
//
//   soak (default): server.ts (ws + sse, default limits except connections per address) in its own process on CPU 0;
//     a client process on CPU 1 keeps SOAK_CONNECTIONS connections open (a share of them SSE), replaces
//     SOAK_CHURN_PER_SEC of them every second (clean and abrupt closes), lets SOAK_SLOW_SHARE of the new ones stop
//     reading (the server closes them, 1013), publishes SOAK_PUBLISH_PER_SEC events and probes what a normal client
//     sees (publish-to-receive latency of a quiet room, every 100 ms). Every SOAK_SAMPLE_S it records the server's
//     RSS and open descriptors, the live connections and the probe's latency; at the end it writes the timeline
//     (bench/results/soak-<time>.json), a plot (docs/images/soak.svg) and a summary table.
//   --slow-readers: the latency of a normal client while 200 clients that read nothing fill their buffers with a
//     firehose of 60 KB events, until the server closes them (issue 20 measured 0.7 to 1.3 s before the fixes).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { CAN_PIN, ROOT, startChild, stopChild } from './lib/proc.js'
import { fixed, int, loadNow, machineNote, percentile } from './lib/stats.js'

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const SLOW_READERS = process.argv.includes('--slow-readers')
const CONNECTIONS = env('SOAK_CONNECTIONS', SLOW_READERS ? 200 : 10_000)
const MINUTES = env('SOAK_MINUTES', SLOW_READERS ? 0.5 : 30)
const SAMPLE_S = env('SOAK_SAMPLE_S', SLOW_READERS ? 1 : 10)
const plan = {
  connections: CONNECTIONS,
  sseShare: SLOW_READERS ? 0 : env('SOAK_SSE_SHARE', 0.2),
  rooms: env('SOAK_ROOMS', 200),
  churnPerSec: SLOW_READERS ? 0 : env('SOAK_CHURN_PER_SEC', 100),
  slowShare: env('SOAK_SLOW_SHARE', SLOW_READERS ? 1 : 0.02),
  publishPerSec: env('SOAK_PUBLISH_PER_SEC', SLOW_READERS ? 80 : 100),
  publishBytes: env('SOAK_PUBLISH_BYTES', SLOW_READERS ? 16_000 : 1000),
  firehoseAll: SLOW_READERS
}

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}

function startServer (port: number): ChildProcess {
  const serverEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    GATEWAYS: 'ws,sse',
    LOG_LEVEL: 'warn',
    CLIENT_PUBLISH_ROOMS: 'public:soak-*',
    // every client comes from 127.0.0.1 here: the per-address limits would cap the soak at 1000 connections
    WS_MAX_CONN_PER_IP: '1000000',
    SSE_MAX_CONN_PER_IP: '1000000',
    ...(SLOW_READERS ? { WS_IP_RATE_BYTES_PER_SEC: String(64 << 20), WS_IP_RATE_BYTES_BURST: String(64 << 20), WS_RATE_BYTES_PER_SEC: String(64 << 20), WS_RATE_BYTES_BURST: String(64 << 20) } : {})
  }
  // SOAK_PROF=<dir>: a CPU profile of server.ts (written when it exits)
  const args = [...(process.env.SOAK_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.SOAK_PROF}`]), '--import', 'tsx', 'server.ts']
  const proc = CAN_PIN
    ? spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: ROOT, env: serverEnv, stdio: ['ignore', 'inherit', 'inherit'] })
    : spawn(process.execPath, args, { cwd: ROOT, env: serverEnv, stdio: ['ignore', 'inherit', 'inherit'] })
  process.once('exit', () => { proc.kill('SIGKILL') })
  return proc
}

async function waitListening (port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
      socket.on('error', () => { resolve(false) })
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error('server.ts did not listen')
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

interface Row {
  t: number
  live: number
  opened: number
  slowClosed: number
  published: number
  rssMiB: number
  fds: number
  p50: number
  p99: number
  max: number
  probes: number
  probeLost: number
  load: string
}

/** A small SVG: one panel per series group, time on x. No dependency. */
function plot (rows: Row[], title: string): string {
  const W = 900
  const panelH = 170
  const panels: Array<{ label: string, series: Array<{ name: string, color: string, values: number[] }> }> = [
    { label: 'connections', series: [{ name: 'live connections', color: '#1f77b4', values: rows.map((r) => r.live) }] },
    { label: 'server memory (MiB) and open descriptors / 100', series: [
      { name: 'RSS MiB', color: '#d62728', values: rows.map((r) => r.rssMiB) },
      { name: 'fds / 100', color: '#9467bd', values: rows.map((r) => r.fds / 100) }
    ] },
    { label: 'normal client publish-to-receive latency (ms)', series: [
      { name: 'p50', color: '#2ca02c', values: rows.map((r) => r.p50) },
      { name: 'p99', color: '#ff7f0e', values: rows.map((r) => r.p99) },
      { name: 'max', color: '#7f7f7f', values: rows.map((r) => r.max) }
    ] }
  ]
  const left = 60
  const right = 20
  const top = 40
  const tMax = Math.max(1, ...rows.map((r) => r.t))
  const x = (t: number) => left + (t / tMax) * (W - left - right)
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${top + panels.length * (panelH + 30)}" font-family="sans-serif" font-size="11">\n`
  svg += `<rect width="100%" height="100%" fill="white"/>\n<text x="${left}" y="20" font-size="14">${title}</text>\n`
  panels.forEach((panel, i) => {
    const y0 = top + i * (panelH + 30)
    const finite = panel.series.flatMap((s) => s.values.filter(Number.isFinite))
    const vMax = Math.max(1, ...finite) * 1.1
    const y = (v: number) => y0 + panelH - (v / vMax) * panelH
    svg += `<text x="${left}" y="${y0 - 6}">${panel.label}</text>\n`
    svg += `<rect x="${left}" y="${y0}" width="${W - left - right}" height="${panelH}" fill="none" stroke="#ccc"/>\n`
    for (const frac of [0, 0.5, 1]) {
      const v = vMax * frac
      svg += `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 100 ? Math.round(v) : v.toFixed(1)}</text>\n`
    }
    panel.series.forEach((s, k) => {
      const points = rows.map((r, j) => Number.isFinite(s.values[j]) ? `${x(r.t).toFixed(1)},${y(s.values[j]).toFixed(1)}` : '').filter(Boolean)
      svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${points.join(' ')}"/>\n`
      svg += `<text x="${W - right - 120}" y="${y0 + 14 + k * 13}" fill="${s.color}">${s.name}</text>\n`
    })
  })
  const yAxis = top + panels.length * (panelH + 30) - 14
  svg += `<text x="${left}" y="${yAxis}">0 s</text><text x="${W - right}" y="${yAxis}" text-anchor="end">${Math.round(tMax)} s</text>\n`
  return `${svg}</svg>\n`
}

async function main (): Promise<void> {
  const port = await freePort()
  console.log(`# soak${SLOW_READERS ? ' --slow-readers' : ''}: ${JSON.stringify(plan)}, ${MINUTES} min, sample every ${SAMPLE_S} s`)
  console.log(`# ${machineNote()}; pinned: ${CAN_PIN ? 'server CPU 0, clients CPU 1' : 'no'}`)
  const server = startServer(port)
  await waitListening(port)
  const client = startChild('soak clients', 'bench/lib/soak-client.ts', { cpu: 1 })
  await client.call('start', { plan: { ...plan, port } }, 120_000)
  const started = Date.now()
  const rows: Row[] = []
  const all: number[] = []
  while (Date.now() - started < MINUTES * 60_000) {
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_S * 1000))
    if (server.exitCode !== null) throw new Error(`server.ts exited (${server.exitCode})`)
    const s = await client.call<{ live: number, opened: number, slowClosed: number, published: number, latencies: Float64Array, probeLost: number }>('sample')
    const lat = Array.from(s.latencies)
    all.push(...lat)
    const row: Row = {
      t: (Date.now() - started) / 1000,
      live: s.live,
      opened: s.opened,
      slowClosed: s.slowClosed,
      published: s.published,
      rssMiB: rssMiB(server.pid as number),
      fds: fdCount(server.pid as number),
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: lat.length === 0 ? NaN : Math.max(...lat),
      probes: lat.length,
      probeLost: s.probeLost,
      load: loadNow()
    }
    rows.push(row)
    console.log(`${fixed(row.t, 0)} s: ${int(row.live)} live, ${int(row.opened)} opened, ${int(row.slowClosed)} slow closed, RSS ${fixed(row.rssMiB, 0)} MiB, ${row.fds} fds, probe p50 ${fixed(row.p50)} p99 ${fixed(row.p99)} max ${fixed(row.max)} ms (${row.probes}, lost ${row.probeLost}), load ${row.load}`)
  }
  await stopChild(client)
  server.kill('SIGTERM')
  await new Promise((resolve) => server.once('exit', resolve))

  const name = SLOW_READERS ? 'soak-slow-readers' : 'soak'
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  writeFileSync(`${ROOT}bench/results/${name}-${stamp}.json`, JSON.stringify({ plan, minutes: MINUTES, machine: machineNote(), rows }, null, 1))
  mkdirSync(`${ROOT}docs/images`, { recursive: true })
  const title = SLOW_READERS
    ? `${CONNECTIONS} clients that stop reading a 60 KB firehose, and a normal client`
    : `${int(CONNECTIONS)} connections for ${MINUTES} min, ${plan.churnPerSec}/s churned, ${plan.slowShare * 100}% slow readers, ${plan.publishPerSec} publishes/s`
  writeFileSync(`${ROOT}docs/images/${name}.svg`, plot(rows, title))
  const first = rows[0]
  const last = rows[rows.length - 1]
  console.log(`\n| | start | end | max |\n| --- | --- | --- | --- |`)
  console.log(`| live connections | ${int(first.live)} | ${int(last.live)} | ${int(Math.max(...rows.map((r) => r.live)))} |`)
  console.log(`| server RSS (MiB) | ${fixed(first.rssMiB, 0)} | ${fixed(last.rssMiB, 0)} | ${fixed(Math.max(...rows.map((r) => r.rssMiB)), 0)} |`)
  console.log(`| open descriptors | ${first.fds} | ${last.fds} | ${Math.max(...rows.map((r) => r.fds))} |`)
  console.log(`| probe latency p50 / p99 (ms) | ${fixed(first.p50)} / ${fixed(first.p99)} | ${fixed(last.p50)} / ${fixed(last.p99)} | ${fixed(Math.max(...rows.map((r) => r.p99).filter(Number.isFinite)))} (p99) |`)
  console.log(`\nwhole run: ${int(last.opened)} connections opened, ${int(last.slowClosed)} slow readers closed, ${int(last.published)} publishes; probe p50 ${fixed(percentile(all, 50))} ms, p99 ${fixed(percentile(all, 99))} ms, max ${fixed(Math.max(...all))} ms over ${int(all.length)} probes`)
  console.log(`plot: docs/images/${name}.svg`)

}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
