// WebSocket fan-out benchmark: one room of N clients held by separate client processes; our gateway (Fastify +
// wsGateway, `app.rooms.publish`) against a plain `ws` server calling `send` per client, a frame-once `ws` server
// (one frame written to every socket) and Socket.IO 4 rooms, all in the same run. See bench/lib/fanout.ts.
// Run: npm run bench -- ws-fanout   (or: node --import tsx bench/ws-fanout.ts)
// env: BENCH_CLIENTS=1000,5000  BENCH_CLIENT_PROCS=2  BENCH_ROUNDS=4  BENCH_DELIVERIES=120000  BENCH_BURST=20000
//      BENCH_RATE (publishes/s; default 20000/N, at most 20)  BENCH_LATENCY_S=2.5  BENCH_MAX_S=300  BENCH_PIN=0 (no taskset)  BENCH_SERVERS=<kinds> (a subset)  BENCH_VERBOSE=1
import { envList, envNumber, runFanout, type Ratio } from './lib/fanout.js'

const sizes = envList('BENCH_CLIENTS', [1000, 5000])
const ratios: Ratio[] = [
  { label: 'deliveries/s gateway / frame-once (1/turn)', num: 'ws-gateway', den: 'ws-frame-once', metric: 'rate', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'deliveries/s gateway / frame-once (burst)', num: 'ws-gateway', den: 'ws-frame-once', metric: 'rateBurst', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'deliveries/s gateway / plain ws loop (1/turn)', num: 'ws-gateway', den: 'ws-plain', metric: 'rate', target: '> 1', meets: (v) => v > 1 },
  { label: 'deliveries/s gateway / plain ws loop (burst)', num: 'ws-gateway', den: 'ws-plain', metric: 'rateBurst', target: '> 1', meets: (v) => v > 1 },
  { label: 'deliveries/s gateway / Socket.IO (1/turn)', num: 'ws-gateway', den: 'socketio', metric: 'rate', target: '>= 1.6', meets: (v) => v >= 1.6 },
  { label: 'deliveries/s gateway / Socket.IO (burst)', num: 'ws-gateway', den: 'socketio', metric: 'rateBurst', target: '>= 1.6', meets: (v) => v >= 1.6 },
  { label: 'CPU per delivery frame-once / gateway (1/turn)', num: 'ws-gateway', den: 'ws-frame-once', metric: 'cpu', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'CPU per delivery frame-once / gateway (burst)', num: 'ws-gateway', den: 'ws-frame-once', metric: 'cpuBurst', target: '>= 0.95', meets: (v) => v >= 0.95 },
  { label: 'CPU per delivery plain ws loop / gateway (1/turn)', num: 'ws-gateway', den: 'ws-plain', metric: 'cpu', target: '> 1', meets: (v) => v > 1 },
  { label: 'CPU per delivery plain ws loop / gateway (burst)', num: 'ws-gateway', den: 'ws-plain', metric: 'cpuBurst', target: '> 1', meets: (v) => v > 1 },
  { label: 'CPU per delivery Socket.IO / gateway (1/turn)', num: 'ws-gateway', den: 'socketio', metric: 'cpu', target: '>= 1.6', meets: (v) => v >= 1.6 },
  { label: 'CPU per delivery Socket.IO / gateway (burst)', num: 'ws-gateway', den: 'socketio', metric: 'cpuBurst', target: '>= 1.6', meets: (v) => v >= 1.6 },
  { label: 'heap per idle connection gateway / plain ws', num: 'ws-gateway', den: 'ws-plain', metric: 'heap', target: '<= 1.2', meets: (v) => v <= 1.2 },
  { label: 'RSS per idle connection gateway / plain ws (RSS grows in steps: rough)', num: 'ws-gateway', den: 'ws-plain', metric: 'rss', target: '(info)', meets: () => true },
  { label: 'heap per idle connection Fastify + @fastify/websocket alone / plain ws', num: 'ws-fastify', den: 'ws-plain', metric: 'heap', target: '(floor)', meets: () => true },
  { label: 'heap per idle connection gateway / Fastify + @fastify/websocket alone', num: 'ws-gateway', den: 'ws-fastify', metric: 'heap', target: '(info)', meets: () => true }
]

await runFanout({
  title: `## WebSocket fan-out: one room, ${sizes.join(' and ')} clients, ~210-byte JSON events`,
  command: 'npm run bench -- ws-fanout',
  contenders: [
    { kind: 'ws-gateway', label: 'gateway (Fastify + wsGateway, rooms.publish)', client: 'ws' },
    { kind: 'ws-frame-once', label: 'ws, frame once, same Buffer to every socket', client: 'ws' },
    { kind: 'ws-plain', label: 'ws, send() per client', client: 'ws' },
    { kind: 'socketio', label: 'Socket.IO 4, io.to(room).emit', client: 'sio' },
    { kind: 'ws-fastify', label: 'Fastify + @fastify/websocket alone (memory only)', client: 'ws', memoryOnly: true }
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
