import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { NO_COVERAGE, poll, startInstance } from './helpers/instance.js'

/**
 * server.ts's signal handling, black-box (docs/security.md, "Shutdown"): a signal sent to the whole process group of
 * `npm start` reaches node twice (npm forwards it); the repeat must not cut the graceful shutdown short (every socket
 * sees 1001, not 1006). A third signal forces the exit.
 */

// three server starts (tsx compiles server.ts each time): more than the default per-file budget on a loaded machine
t.setTimeout(150_000)

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

/** A raw TCP client that completes the upgrade, then answers nothing: the server's close frame is never answered. */
async function stuckClient (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(UPGRADE)
  await new Promise<void>((resolve) => {
    let head = ''
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData)
        resolve()
      }
    }
    socket.on('data', onData)
  })
  socket.resume()
  return socket
}

/** `npm start` in a process group of its own (as a terminal or a service manager runs it), under a watchdog. */
function npmStart (env: Record<string, string>) {
  // detached: a new session and process group, with the default signal dispositions (a shell's `&` would ignore SIGINT)
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, [NO_COVERAGE]: '0', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  // the watchdog holds the test's pipe: when it closes (teardown, or the test died), the whole group is killed
  const watchdog = spawn('sh', ['-c', `cat >/dev/null; kill -KILL -- -${child.pid as number} 2>/dev/null; exit 0`], {
    stdio: ['pipe', 'ignore', 'ignore']
  })
  watchdog.stdin.on('error', () => {})
  let out = ''
  const waiters = new Set<() => void>()
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      out += chunk
      for (const wake of [...waiters]) wake()
    })
  }
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const waitFor = async (pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> => await new Promise((resolve, reject) => {
    const check = () => {
      const match = pattern.exec(out)
      if (match !== null) {
        finish()
        resolve(match)
      }
    }
    const timer = setTimeout(() => {
      finish()
      reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms:\n${out.slice(-2000)}`))
    }, timeoutMs)
    const finish = () => {
      clearTimeout(timer)
      waiters.delete(check)
    }
    waiters.add(check)
    check()
  })
  const stop = async () => {
    watchdog.stdin.end()
    await exited
  }
  return { group: child.pid as number, exited, waitFor, stop, output: () => out }
}

{
  const signal = 'SIGINT'
  t.test(`${signal} sent to the process group of npm start: every socket sees 1001 and the shutdown completes`, async (t) => {
    t.setTimeout(60_000)
    const run = npmStart({ GATEWAYS: 'ws' })
    t.after(run.stop)
    const group = run.group
    const port = Number((await run.waitFor(/Server listening at http:\/\/127\.0\.0\.1:(\d+)/, 45_000))[1])
    const sockets = await Promise.all([1, 2, 3].map(async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      ws.on('error', () => {})
      await once(ws, 'open')
      return ws
    }))
    const codes = sockets.map(async (ws) => (await once(ws, 'close'))[0] as number)
    process.kill(-group, signal)
    t.same(await Promise.all(codes), [1001, 1001, 1001], 'no 1006: a forwarded second signal did not kill the process')
    await run.exited
    t.match(run.output(), /"signal":"SIG(INT|TERM)","msg":"shutting down"/)
    t.notMatch(run.output(), /shutdown timed out|shutdown forced/)
  })
}

t.test('a signal repeated during the graceful shutdown does not cut it short; the third forces the exit', async (t) => {
  t.setTimeout(60_000)
  for (const [count, expected] of [[2, 0], [3, 143]] as const) {
    const instance = await startInstance(t, { GATEWAYS: 'ws' })
    // a client that never answers the close frame holds the shutdown open for the close timeout (3 s)
    const stuck = await stuckClient(instance.port)
    t.after(() => { stuck.destroy() })
    const ws = new WebSocket(instance.wsUrl('/ws'))
    ws.on('error', () => {})
    await once(ws, 'open')
    const code = once(ws, 'close')
    // one at a time, each after the server logged the previous one (signals pending together merge into one)
    for (let i = 1; i <= count; i++) {
      process.kill(instance.pid, 'SIGTERM')
      const seen = i === 1 ? /"msg":"shutting down"/ : new RegExp(`"received":${i},`)
      await poll(() => seen.test(instance.logs.join('\n')) || !instance.running, 10_000, `signal ${i} logged`)
    }
    t.equal(await instance.exited, expected, `${count} signals: exit code ${expected}`)
    if (count === 2) {
      t.equal((await code)[0], 1001, 'the client saw the graceful 1001')
      t.match(instance.logs.join('\n'), /"received":2,"msg":"already shutting down/)
    } else {
      t.match(instance.logs.join('\n'), /shutdown forced by a repeated signal/)
    }
  }
})

