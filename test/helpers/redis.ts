import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { requireTool } from './tools.js'

/**
 * A real `redis-server` on a free loopback port for one test file, without persistence.
 *
 * It runs under a small shell watchdog that kills it when the watchdog's stdin closes, so the server goes away even
 * when the test process dies without running its teardown. `stop()` and `start()` take it down and bring it back on
 * the same port (an outage; all data is lost, as in a real restart without persistence).
 */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** whether the server is up (between start and stop) */
  readonly running: boolean
  /** stops the server (SIGTERM) and waits until it has exited and the port is free */
  stop (): Promise<void>
  /** starts it again on the same port and waits for PING */
  start (): Promise<void>
  /** one command over a fresh connection, e.g. `['FLUSHALL']`; resolves the raw reply line(s) */
  command (args: string[]): Promise<string>
}

// The watchdog: redis-server in the background, killed when stdin reaches EOF (parent closed it or died).
const WATCHDOG = 'redis-server "$@" & pid=$!; trap \'kill -TERM $pid 2>/dev/null\' EXIT; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

/** Sends one RESP command over a fresh socket and resolves the reply text (good enough for PING, FLUSHALL, DEBUG). */
export async function rawCommand (port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`redis on port ${port} did not answer ${args[0]} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.on('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    })
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (reply.endsWith('\r\n')) {
        clearTimeout(timer)
        socket.end()
        resolve(reply.trimEnd())
      }
    })
    socket.on('error', (err) => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    })
  })
}

/** Resolves once `predicate` is true, checking every `intervalMs`; rejects after `timeoutMs`. */
export async function until (predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition', intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** A redis-server process on a fixed port that can be stopped and started again (same port, same files). */
interface RedisProcess {
  readonly running: boolean
  start (): Promise<void>
  stop (signal?: NodeJS.Signals): Promise<void>
}

function redisProcess (port: number, args: string[], cpu: number | undefined): RedisProcess {
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = child
    if (proc === null) return
    child = null
    if (signal === 'SIGKILL') {
      // a crash: the watchdog's redis-server dies at once (its pid is the watchdog's child)
      spawnSync('pkill', ['-KILL', '-P', String(proc.pid)])
    }
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(killer)
    // the port is free once a connection is refused
    await until(async () => await rawCommand(port, ['PING'], 200).then(() => false, () => true), 3000, `port ${port} to close`)
  }
  const start = async () => {
    if (child !== null) return
    const argv = ['sh', '-c', WATCHDOG, 'watchdog', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--logfile', '', ...args]
    const proc = cpu === undefined
      ? spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'ignore'] })
      : spawn('taskset', ['-c', String(cpu), ...argv], { stdio: ['pipe', 'ignore', 'ignore'] })
    child = proc
    exited = new Promise((resolve) => { proc.once('exit', () => { resolve() }) })
    try {
      await until(async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${proc.exitCode}`)
        // with --requirepass an unauthenticated PING answers NOAUTH: up all the same
        return await rawCommand(port, ['PING'], 500).then((r) => r === '+PONG' || r.startsWith('-NOAUTH'), () => false)
      }, 5000, `redis-server on port ${port}`)
    } catch (err) {
      await stop()
      throw err
    }
  }
  return { get running () { return child !== null }, start, stop }
}

/**
 * Starts redis-server for test `t` (skipped locally, failed under CI when it is not installed) and stops it in
 * `t.after`. Resolves null when the tool is missing. `args` go to redis-server as well (e.g. `--requirepass x`);
 * `cpu` pins it with taskset (benchmarks).
 */
export async function startRedis (t: Pick<Test, 'after'>, options: { args?: string[], cpu?: number } = {}): Promise<RedisServer | null> {
  // tap's skip/fail overloads do not match requireTool's narrow parameter type; the calls are the same at run time
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'redis-server')
  if (bin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-redis-'))
  const server = redisProcess(port, ['--dir', dir, ...(options.args ?? [])], options.cpu)
  await server.start()
  t.after(async () => {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running () { return server.running },
    stop: async () => { await server.stop() },
    start: async () => { await server.start() },
    command: async (args) => await rawCommand(port, args)
  }
}

/** One node of a test cluster. */
export interface ClusterNode {
  readonly port: number
  readonly running: boolean
  /** SIGTERM, or SIGKILL (a crash: no last writes, no goodbye to the cluster) */
  stop (signal?: NodeJS.Signals): Promise<void>
  /** starts it again with its nodes.conf: it rejoins the cluster (as a replica when another node took over) */
  start (): Promise<void>
}

/**
 * A real Redis Cluster on loopback for one test file: three masters with one replica each (`redis-cli --cluster
 * create ... --cluster-replicas 1`), explicit cluster bus ports, `cluster-require-full-coverage no` (the other
 * slots go on serving while one master is down) and a short node timeout so a failover takes a few seconds.
 */
export interface RedisCluster {
  /** `host:port` of every node, for REDIS_CLUSTER_NODES */
  readonly seeds: string[]
  readonly nodes: ClusterNode[]
  readonly nodeTimeoutMs: number
  /** ports of the nodes that are masters now (CLUSTER NODES of a running node) */
  masters (): Promise<number[]>
  /** the port of the master serving `slot` now */
  masterOf (slot: number): Promise<number>
  /** resolves once every running node says cluster_state:ok, every replica has synced, and every slot has a running master */
  waitHealthy (timeoutMs?: number): Promise<void>
  /** one command to the node on `port` */
  command (port: number, args: string[]): Promise<string>
}

export async function startRedisCluster (t: Pick<Test, 'after'>, options: { cpu?: number, nodeTimeoutMs?: number } = {}): Promise<RedisCluster | null> {
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'redis-server')
  if (bin === null) return null
  if (requireTool(t as unknown as Parameters<typeof requireTool>[0], 'redis-cli') === null) return null
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1500
  const dir = await mkdtemp(join(tmpdir(), 'gw-redis-cluster-'))
  const ports: number[] = []
  const used = new Set<number>()
  const take = async () => {
    for (;;) {
      const port = await freePort()
      if (!used.has(port)) {
        used.add(port)
        return port
      }
    }
  }
  const nodes: Array<ClusterNode & { process: RedisProcess }> = []
  for (let i = 0; i < 6; i++) {
    const port = await take()
    const busPort = await take()
    ports.push(port)
    const proc = redisProcess(port, ['--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', String(nodeTimeoutMs), '--cluster-port', String(busPort), '--cluster-require-full-coverage', 'no',
      '--dbfilename', `dump-${port}.rdb`], options.cpu)
    nodes.push({ port, process: proc, get running () { return proc.running }, stop: async (signal) => { await proc.stop(signal) }, start: async () => { await proc.start() } })
  }
  t.after(async () => {
    await Promise.all(nodes.map(async (node) => { await node.stop() }))
    await rm(dir, { recursive: true, force: true })
  })
  await Promise.all(nodes.map(async (node) => { await node.start() }))
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)

  const clusterNodes = async (): Promise<string[][]> => {
    for (const node of nodes) {
      if (!node.running) continue
      const text = await rawCommand(node.port, ['CLUSTER', 'NODES']).catch(() => null)
      if (text === null) continue
      return text.split('\n').map((line) => line.trim().split(' ')).filter((f) => f.length >= 8)
    }
    throw new Error('no cluster node answers')
  }
  const portOf = (address: string) => Number(address.split('@')[0].split(':')[1])
  const masters = async () => (await clusterNodes())
    .filter((f) => f[2].includes('master') && !f[2].includes('fail') && f.length > 8).map((f) => portOf(f[1]))
  const masterOf = async (slot: number) => {
    for (const f of await clusterNodes()) {
      if (!f[2].includes('master') || f[2].includes('fail')) continue
      for (const range of f.slice(8)) {
        const [from, to] = range.split('-').map(Number)
        if (slot >= from && slot <= (to ?? from)) return portOf(f[1])
      }
    }
    throw new Error(`no master serves slot ${slot}`)
  }
  const waitHealthy = async (timeoutMs = 20_000) => {
    await until(async () => {
      for (const node of nodes) {
        if (!node.running) continue
        const info = await rawCommand(node.port, ['CLUSTER', 'INFO']).catch(() => '')
        if (!info.includes('cluster_state:ok')) return false
        // a replica that has not synced with its master yet could not take over from it
        const replication = await rawCommand(node.port, ['INFO', 'replication']).catch(() => '')
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false
      }
      const live = (await clusterNodes()).filter((f) => f[2].includes('master') && !f[2].includes('fail') && f.length > 8)
      let slots = 0
      for (const f of live) {
        if (!nodes.some((n) => n.running && n.port === portOf(f[1]))) return false
        for (const range of f.slice(8)) {
          const [from, to] = range.split('-').map(Number)
          slots += (to ?? from) - from + 1
        }
      }
      return slots === 16384
    }, timeoutMs, 'the cluster to be healthy', 100)
  }
  await waitHealthy()
  return {
    seeds: ports.map((p) => `127.0.0.1:${p}`),
    nodes,
    nodeTimeoutMs,
    masters,
    masterOf,
    waitHealthy,
    command: async (port, args) => await rawCommand(port, args)
  }
}
