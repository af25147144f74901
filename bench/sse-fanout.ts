// SSE fan-out benchmark: one room of N event streams held by separate client processes (plain http.get readers);
// our gateway (Fastify + sseGateway, `app.rooms.publish`) against a plain node:http SSE loop (`res.write` per
// response) in the same run. See bench/lib/fanout.ts.
// Run: npm run bench -- sse-fanout   (or: node --import tsx bench/sse-fanout.ts)
// env: BENCH_CLIENTS=1000,5000  BENCH_CLIENT_PROCS=2  BENCH_ROUNDS=4  BENCH_DELIVERIES=120000  BENCH_BURST=20000
//      BENCH_RATE (publishes/s; default 20000/N, at most 20)  BENCH_LATENCY_S=2.5  BENCH_MAX_S=300  BENCH_PIN=0 (no taskset)  BENCH_SERVERS=<kinds> (a subset)  BENCH_VERBOSE=1
import { envList, envNumber, runFanout, type Ratio } from './lib/fanout.js'

const sizes = envList('BENCH_CLIENTS', [1000, 5000])
const ratios: Ratio[] = [
  { label: 'deliveries/s gateway / plain SSE loop (1/turn)', num: 'sse-gateway', den: 'sse-plain', metric: 'rate', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'deliveries/s gateway / plain SSE loop (burst)', num: 'sse-gateway', den: 'sse-plain', metric: 'rateBurst', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'CPU per delivery plain SSE loop / gateway (1/turn)', num: 'sse-gateway', den: 'sse-plain', metric: 'cpu', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'CPU per delivery plain SSE loop / gateway (burst)', num: 'sse-gateway', den: 'sse-plain', metric: 'cpuBurst', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'heap per idle stream gateway / plain SSE', num: 'sse-gateway', den: 'sse-plain', metric: 'heap', target: '(info)', meets: () => true }
]

await runFanout({
  title: `## SSE fan-out: one room, ${sizes.join(' and ')} streams, ~230-byte events`,
  command: 'npm run bench -- sse-fanout',
  contenders: [
    { kind: 'sse-gateway', label: 'gateway (Fastify + sseGateway, rooms.publish)', client: 'sse' },
    { kind: 'sse-plain', label: 'node:http, res.write() per response', client: 'sse' }
  ],
  ratios,
  sizes,
  clientProcs: envNumber('BENCH_CLIENT_PROCS', 2),
  rounds: envNumber('BENCH_ROUNDS', 4),
  deliveries: envNumber('BENCH_DELIVERIES', 120_000),
  burstDeliveries: envNumber('BENCH_BURST', 20_000),
  rate: envNumber('BENCH_RATE', 0),
  latencyDeliveries: envNumber('BENCH_LATENCY_DELIVERIES', 20_000),
  latencyS: envNumber('BENCH_LATENCY_S', 2.5),
  maxS: envNumber('BENCH_MAX_S', 300)
})
