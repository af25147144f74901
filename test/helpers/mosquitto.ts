import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import type { Test } from 'tap'
import { requireTool } from './tools.js'
import { freePort, until } from './redis.js'

/**
 * A real mosquitto (Debian's 2.0) on a free loopback port for one test file: anonymous, no persistence (docs/testing.md).
 * It runs under a shell watchdog that kills it when the watchdog's stdin closes (the test process ended for any
 * reason). `stop()`/`start()` take it down and bring it back on the same port: a broker restart, sessions lost.
 */
export interface Mosquitto {
  readonly port: number
  readonly url: string
  stop (): Promise<void>
  start (): Promise<void>
  /** `mosquitto_pub` with these arguments (host and port added); resolves once it exited 0 */
  pub (args: string[], stdin?: Buffer): Promise<void>
}

const WATCHDOG = 'mosquitto "$@" & pid=$!; trap \'kill -TERM $pid 2>/dev/null\' EXIT; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid'

function listening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

export async function startMosquitto (t: Pick<Test, 'after'>): Promise<Mosquitto | null> {
  const skippable = t as unknown as Parameters<typeof requireTool>[0]
  const bin = requireTool(skippable, 'mosquitto', ['/usr/sbin/mosquitto'])
  const pubBin = requireTool(skippable, 'mosquitto_pub')
  if (bin === null || pubBin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-mosquitto-'))
  const config = join(dir, 'mosquitto.conf')
  await writeFile(config, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n`)
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()

  const start = async () => {
    if (child !== null) return
    const proc = spawn('sh', ['-c', WATCHDOG.replace('mosquitto "$@"', `${bin} "$@"`), 'watchdog', '-c', config], { stdio: ['pipe', 'ignore', 'ignore'] })
    child = proc
    exited = new Promise((resolve) => { proc.once('exit', () => { resolve() }) })
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`mosquitto on port ${port} exited with ${proc.exitCode}`)
      return await listening(port)
    }, 5000, `mosquitto on port ${port}`)
  }
  const stop = async () => {
    const proc = child
    if (proc === null) return
    child = null
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(killer)
    await until(async () => !(await listening(port)), 3000, `port ${port} to close`)
  }
  await start()
  t.after(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop,
    start,
    pub: (args, stdin) => new Promise((resolve, reject) => {
      const proc = execFile(pubBin, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 }, (err, _out, stderr) => {
        if (err !== null) reject(new Error(`mosquitto_pub ${args.join(' ')} failed: ${stderr || err.message}`))
        else resolve()
      })
      if (stdin !== undefined) proc.stdin?.end(stdin)
    })
  }
}
