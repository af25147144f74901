// Child processes of the fan-out benchmarks: spawned with an IPC channel (advanced serialization, so typed arrays
// cross as they are), optionally pinned to one CPU with `taskset -c` (every thread of the child inherits it), and
// killed whatever happens to the parent: on exit, on a signal, on an uncaught error, and by the children themselves
// when the IPC channel closes (see `serveParent`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** taskset exists, there are two CPUs or more, and BENCH_PIN is not 0 */
export const CAN_PIN = process.env.BENCH_PIN !== '0' && cpus().length > 1 &&
  spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0

export function nowUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

export interface Child {
  readonly name: string
  readonly proc: ChildProcess
  /** sends `{ cmd, ...args }` and resolves with the reply; rejects after `timeoutMs` or when the child dies */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- IPC messages of our own bench workers, read field by field
  call<T = any> (cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>
  kill (): void
}

const children = new Set<ChildProcess>()

function killAll (): void {
  for (const proc of children) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  }
  children.clear()
}

process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(130)
  })
}
process.once('uncaughtException', (err) => {
  console.error(err)
  killAll()
  process.exit(1)
})

/**
 * Starts `node [--import tsx] <file> <args>` (file relative to the repository root) with an IPC channel, pinned to
 * `cpu` when pinning is available. The child must call `serveParent` and answer `ready` once it can take commands.
 */
export function startChild (name: string, file: string, options: { cpu?: number, nodeFlags?: string[], args?: string[] } = {}): Child {
  const nodeArgs = [...(options.nodeFlags ?? []), '--import', 'tsx', fileURLToPath(new URL(file, `file://${ROOT}`)), ...(options.args ?? [])]
  const pin = CAN_PIN && options.cpu !== undefined
  const proc = pin
    ? spawn('taskset', ['-c', String(options.cpu), process.execPath, ...nodeArgs], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
    : spawn(process.execPath, nodeArgs, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
  children.add(proc)
  let seq = 0
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- IPC messages of our own bench workers, read field by field
  const waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  const failAll = (err: Error) => {
    for (const w of waiting.values()) {
      clearTimeout(w.timer)
      w.reject(err)
    }
    waiting.clear()
  }
  proc.on('message', (msg: { id?: number, error?: string }) => {
    const w = msg.id === undefined ? undefined : waiting.get(msg.id)
    if (w === undefined) return
    waiting.delete(msg.id as number)
    clearTimeout(w.timer)
    if (msg.error !== undefined) w.reject(new Error(`${name}: ${msg.error}`))
    else w.resolve(msg)
  })
  proc.once('exit', (code, signal) => {
    children.delete(proc)
    failAll(new Error(`${name} exited (code ${code}, signal ${signal})`))
  })
  proc.once('error', (err) => { failAll(err) })
  return {
    name,
    proc,
    call (cmd, args = {}, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        if (!proc.connected) {
          reject(new Error(`${name} is not running`))
          return
        }
        const id = ++seq
        const timer = setTimeout(() => {
          waiting.delete(id)
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`))
        }, timeoutMs)
        waiting.set(id, { resolve, reject, timer })
        proc.send({ ...args, cmd, id })
      })
    },
    kill () {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      children.delete(proc)
    }
  }
}

/** Stops `child`: asks it to exit, kills it if it has not within `graceMs`. */
export async function stopChild (child: Child, graceMs = 2000): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) resolve()
    else child.proc.once('exit', () => { resolve() })
  })
  child.call('exit', {}, graceMs).catch(() => {})
  const timer = setTimeout(() => { child.kill() }, graceMs)
  await exited
  clearTimeout(timer)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- IPC messages of our own bench workers, read field by field
type Handler = (msg: Record<string, any>) => unknown
/**
 * The child's side: every command of the parent goes to `handlers[cmd]`; its result (awaited) is the reply. `exit`
 * and `clock` are built in. The child exits as soon as its parent is gone (the IPC channel closes).
 */
export function serveParent (handlers: Record<string, Handler>): void {
  process.on('disconnect', () => { process.exit(0) })
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- IPC messages of our own bench workers, read field by field
  process.on('message', async (msg: Record<string, any>) => {
    const reply = (body: object) => { if (process.connected) process.send?.({ ...body, id: msg.id }) }
    if (msg.cmd === 'exit') {
      reply({})
      setImmediate(() => { process.exit(0) })
      return
    }
    if (msg.cmd === 'clock') {
      reply({ us: nowUs() })
      return
    }
    const handler = handlers[msg.cmd]
    if (handler === undefined) {
      reply({ error: `unknown command ${msg.cmd}` })
      return
    }
    try {
      reply({ ...(await handler(msg) as object) })
    } catch (err) {
      reply({ error: (err as Error)?.stack ?? String(err) })
    }
  })
}

/**
 * Cross-process clock check. Timestamps are `process.hrtime` (CLOCK_MONOTONIC, one clock for every process of the
 * machine, unlike `performance.now()` whose origin is per process and can start late); this verifies it: the child's
 * reading must fall between the parent's send and receive. Returns the widest round trip seen, in µs.
 */
export async function checkClocks (list: readonly Child[]): Promise<{ ok: boolean, maxRttUs: number }> {
  let ok = true
  let maxRttUs = 0
  for (const child of list) {
    for (let i = 0; i < 3; i++) {
      const sent = nowUs()
      const { us } = await child.call<{ us: number }>('clock')
      const back = nowUs()
      if (us < sent || us > back) ok = false
      maxRttUs = Math.max(maxRttUs, back - sent)
    }
  }
  return { ok, maxRttUs }
}
