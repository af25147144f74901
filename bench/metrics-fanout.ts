// The cost of metrics on fan-out: our ws gateway as it is (the core's counters always count) against the same with
// the metrics plugin registered (prom-client defaults with event-loop monitoring, the HTTP histogram hooks) and
// /metrics scraped every second, in one run, servers pinned to CPU 0 and clients to CPU 1. See bench/lib/fanout.ts.
// Run: npm run bench -- metrics-fanout   (or: node --import tsx bench/metrics-fanout.ts)
// env: BENCH_CLIENTS=1000,5000  BENCH_ROUNDS=6  BENCH_SCRAPE_MS=1000 and the fan-out driver's others (bench/ws-fanout.ts)
import { envList, envNumber, runFanout, type Ratio } from './lib/fanout.js'

const sizes = envList('BENCH_CLIENTS', [1000, 5000])
const ratios: Ratio[] = [
  { label: 'deliveries/s metrics on / off (1/turn)', num: 'ws-gateway-metrics', den: 'ws-gateway', metric: 'rate', target: '>= 0.97', meets: (v) => v >= 0.97 },
  { label: 'deliveries/s metrics on / off (burst)', num: 'ws-gateway-metrics', den: 'ws-gateway', metric: 'rateBurst', target: '>= 0.97', meets: (v) => v >= 0.97 },
  { label: 'CPU per delivery off / on (1/turn)', num: 'ws-gateway-metrics', den: 'ws-gateway', metric: 'cpu', target: '>= 0.97', meets: (v) => v >= 0.97 },
  { label: 'CPU per delivery off / on (burst)', num: 'ws-gateway-metrics', den: 'ws-gateway', metric: 'cpuBurst', target: '>= 0.97', meets: (v) => v >= 0.97 },
  { label: 'heap per idle connection on / off', num: 'ws-gateway-metrics', den: 'ws-gateway', metric: 'heap', target: '(info)', meets: () => true }
]

await runFanout({
  title: `## Metrics on against off: ws fan-out, one room, ${sizes.join(' and ')} clients, ~210-byte JSON events, /metrics scraped every ${envNumber('BENCH_SCRAPE_MS', 1000)} ms`,
  command: 'npm run bench -- metrics-fanout',
  contenders: [
    { kind: 'ws-gateway', label: 'gateway, metrics off (counters only)', client: 'ws' },
    { kind: 'ws-gateway-metrics', label: 'gateway, metrics plugin on, scraped', client: 'ws' }
  ],
  ratios,
  sizes,
  clientProcs: envNumber('BENCH_CLIENT_PROCS', 2),
  rounds: envNumber('BENCH_ROUNDS', 6),
  deliveries: envNumber('BENCH_DELIVERIES', 120_000),
  burstDeliveries: envNumber('BENCH_BURST', 20_000),
  rate: envNumber('BENCH_RATE', 0),
  latencyDeliveries: envNumber('BENCH_LATENCY_DELIVERIES', 20_000),
  latencyS: envNumber('BENCH_LATENCY_S', 2.5),
  maxS: envNumber('BENCH_MAX_S', 600)
})
