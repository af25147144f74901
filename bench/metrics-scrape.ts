// What one Prometheus scrape of /metrics costs the server, in CPU time (user + system, process.cpuUsage), which
// other load on a shared machine changes far less than throughput: the gateway with N idle ws connections (real
// sockets: prom-client's nodejs_active_handles and process_open_fds grow with them), each scrape through Fastify's
// inject. At one scrape per `interval`, the share of one core the scrapes take bounds what metrics can cost the
// fan-out (the counters themselves run with metrics off too).
// Run: node --import tsx bench/metrics-scrape.ts   env: BENCH_CLIENTS=0,1000,5000  BENCH_SCRAPES=50
import Fastify from 'fastify'
import WebSocket from 'ws'
import { wsGateway } from '../plugins/ws.js'
import { metrics } from '../plugins/metrics.js'
import { envList, envNumber } from './lib/fanout.js'

const sizes = envList('BENCH_CLIENTS', [1000, 5000])
const scrapes = envNumber('BENCH_SCRAPES', 50)

console.log(`\n## Cost of one /metrics scrape (CPU time, median of ${scrapes} scrapes after 10 unmeasured)\n`)
console.log('| idle ws connections | CPU ms per scrape | wall ms per scrape | exposition bytes | share of one core at a 1 s / 15 s scrape interval |')
console.log('| ---: | ---: | ---: | ---: | ---: |')
for (const n of [0, ...sizes]) {
  const app = Fastify({ logger: false })
  await app.register(metrics)
  await app.register(wsGateway, { maxConnectionsPerIp: 1_000_000, pingMs: 3_600_000 })
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const { port } = app.server.address() as { port: number }
  const clients: WebSocket[] = []
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      clients.push(ws)
      await new Promise<void>((resolve, reject) => { ws.once('open', () => { resolve() }); ws.once('error', reject) })
    }))
  }
  let bytes = 0
  const cpu: number[] = []
  const wall: number[] = []
  for (let i = 0; i < scrapes + 10; i++) {
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    const res = await app.inject('/metrics')
    const dt = Number(process.hrtime.bigint() - t0) / 1e6
    const dc = process.cpuUsage(c0)
    if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
    bytes = res.body.length
    if (i >= 10) {
      cpu.push((dc.user + dc.system) / 1000)
      wall.push(dt)
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const ms = median(cpu)
  console.log(`| ${n.toLocaleString('en')} | ${ms.toFixed(2)} | ${median(wall).toFixed(2)} | ${bytes.toLocaleString('en')} | ${(ms / 10).toFixed(2)}% / ${(ms / 150).toFixed(3)}% |`)
  for (const ws of clients) ws.terminate()
  await app.close()
}
