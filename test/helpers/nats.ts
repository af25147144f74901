import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { requireTool } from './tools.js'
import { freePort, until } from './redis.js'
import { NO_COVERAGE } from './instance.js'

/**
 * A real nats-server with JetStream (Debian's 2.9) on a free loopback port for one test file, its store in a temp
 * directory (docs/testing.md). It runs under a shell watchdog that kills it when the watchdog's stdin closes. `stop()`/
 * `start()` take it down and bring it back on the same port with the same store: a server restart that keeps its
 * streams and consumers.
 */
export interface NatsServer {
  readonly port: number
  readonly url: string
  stop (): Promise<void>
  start (): Promise<void>
  /**
   * Publishes through JetStream from a separate process (Debian has no NATS CLI: the nats client in a child of its
   * own, as another service would), each message's ack awaited. `data` is sent as bytes (a string as UTF-8).
   */
  publish (messages: Array<{ subject: string, data: string | Buffer, headers?: Record<string, string> }>): Promise<void>
}

const WATCHDOG = 'nats-server "$@" & pid=$!; trap \'kill -TERM $pid 2>/dev/null\' EXIT; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid'
const PUBLISHER = fileURLToPath(new URL('./nats-publish.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

function listening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

export async function startNats (t: Pick<Test, 'after'>): Promise<NatsServer | null> {
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server'])
  if (bin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-nats-'))
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  const start = async () => {
    if (child !== null) return
    const proc = spawn('sh', ['-c', WATCHDOG.replace('nats-server "$@"', `${bin} "$@"`), 'watchdog', '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: ['pipe', 'ignore', 'ignore'] })
    child = proc
    exited = new Promise((resolve) => { proc.once('exit', () => { resolve() }) })
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`nats-server on port ${port} exited with ${proc.exitCode}`)
      return await listening(port)
    }, 10_000, `nats-server on port ${port}`)
  }
  const stop = async () => {
    const proc = child
    if (proc === null) return
    child = null
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 5000)
    await exited
    clearTimeout(killer)
    await until(async () => !(await listening(port)), 5000, `port ${port} to close`)
  }
  await start()
  t.after(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  const url = `nats://127.0.0.1:${port}`
  return {
    port,
    url,
    stop,
    start,
    publish: (messages) => new Promise((resolve, reject) => {
      const encoded = messages.map((m) => ({ ...m, data: Buffer.from(m.data).toString('base64') }))
      const proc = execFile(process.execPath, ['--import', 'tsx', PUBLISHER, url], { cwd: ROOT, timeout: 30_000, env: { ...process.env, [NO_COVERAGE]: '0' } }, (err, _out, stderr) => {
        if (err !== null) reject(new Error(`the NATS publisher failed: ${stderr || err.message}`))
        else resolve()
      })
      proc.stdin?.end(JSON.stringify(encoded))
    })
  }
}
