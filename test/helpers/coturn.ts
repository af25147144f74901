import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { requireTool } from './tools.js'
import { freePort, until } from './redis.js'

/**
 * A real coturn (Debian's `turnserver` 4.6) on loopback for one test file: TURN REST credentials
 * (`--use-auth-secret --static-auth-secret`), UDP and TCP on 127.0.0.1, relays on 127.0.0.1 in a small port range,
 * loopback peers allowed, no TLS/DTLS/CLI, every ALLOCATE logged (`--verbose`) to stdout, which the test reads
 * (`log()`). It runs under a shell watchdog that kills it when the watchdog's stdin closes (the test process ended
 * for any reason); `t.after` stops it.
 */
export interface Coturn {
  readonly port: number
  /** `turn:127.0.0.1:<port>` */
  readonly url: string
  /** everything turnserver logged so far */
  log (): string
}

const WATCHDOG = 'turnserver "$@" & pid=$!; trap \'kill -TERM $pid 2>/dev/null\' EXIT; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid'

/** One STUN Binding request over UDP; resolves true when a Binding success response with our transaction id comes back. */
function stunBinding (port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4')
    const transaction = randomBytes(12)
    // RFC 5389: type 0x0001 (Binding request), length 0, magic cookie, 96-bit transaction id
    const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), transaction])
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.close()
      resolve(ok)
    }
    const timer = setTimeout(() => { done(false) }, timeoutMs)
    socket.on('error', () => { done(false) })
    socket.on('message', (message) => {
      done(message.length >= 20 && message.readUInt16BE(0) === 0x0101 && message.subarray(8, 20).equals(transaction))
    })
    socket.send(request, port, '127.0.0.1')
  })
}

export async function startCoturn (t: Pick<Test, 'after'>, secret: string): Promise<Coturn | null> {
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'turnserver', ['/usr/bin/turnserver'])
  if (bin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-coturn-'))
  // a relay range of 200 UDP ports somewhere in the dynamic range; coturn skips ports it cannot bind
  const minPort = 49152 + Math.floor(Math.random() * 80) * 200
  const args = [
    '-n', '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=test',
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', '--listening-port', String(port), '--allow-loopback-peers',
    '--no-tls', '--no-dtls', '--no-cli', '--verbose', '--log-file=stdout',
    '--min-port', String(minPort), '--max-port', String(minPort + 199),
    '--userdb', join(dir, 'db'), '--pidfile', join(dir, 'pid')
  ]
  const chunks: string[] = []
  const proc: ChildProcess = spawn('sh', ['-c', WATCHDOG.replace('turnserver "$@"', `${bin} "$@"`), 'watchdog', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => { chunks.push(chunk) })
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => { chunks.push(chunk) })
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  t.after(async () => {
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 3000)
    await exited
    clearTimeout(killer)
    await rm(dir, { recursive: true, force: true })
  })
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`turnserver exited with ${proc.exitCode}: ${chunks.join('').slice(-2000)}`)
    return await stunBinding(port)
  }, 10_000, `turnserver answering STUN on 127.0.0.1:${port}`)
  return { port, url: `turn:127.0.0.1:${port}`, log: () => chunks.join('') }
}
