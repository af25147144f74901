import { spawn, type ChildProcess } from 'node:child_process'
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

/**
 * Starts redis-server for test `t` (skipped locally, failed under CI when it is not installed) and stops it in
 * `t.after`. Resolves null when the tool is missing. `args` go to redis-server as well (e.g. `--requirepass x`).
 */
export async function startRedis (t: Pick<Test, 'after'>, options: { args?: string[] } = {}): Promise<RedisServer | null> {
  // tap's skip/fail overloads do not match requireTool's narrow parameter type; the calls are the same at run time
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'redis-server')
  if (bin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-redis-'))
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()

  const start = async () => {
    if (child !== null) return
    const proc = spawn('sh', ['-c', WATCHDOG, 'watchdog',
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--daemonize', 'no', '--logfile', '', ...(options.args ?? [])], { stdio: ['pipe', 'ignore', 'ignore'] })
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

  const stop = async () => {
    const proc = child
    if (proc === null) return
    child = null
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(killer)
    // the port is free once a connection is refused
    await until(async () => await rawCommand(port, ['PING'], 200).then(() => false, () => true), 3000, `port ${port} to close`)
  }

  await start()
  t.after(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running () { return child !== null },
    stop,
    start,
    command: async (args) => await rawCommand(port, args)
  }
}
