import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { SignJWT } from 'jose'
import { openWs, type Frames } from './ws-client.js'

/**
 * server.ts in a child process of its own (`node --import tsx server.ts`), configured only through its environment,
 * as an operator would run it: `PORT=0 HOST=127.0.0.1` plus the test's variables. The listening URL is read from its
 * log.
 *
 * It runs under a small `sh` watchdog that holds the test's end of a pipe: when that pipe closes (teardown, or the
 * test process dies for any reason, even SIGKILL) the watchdog sends server.ts SIGTERM (graceful shutdown) and
 * SIGKILL 10 s later if it is still there. `crash()` SIGKILLs server.ts itself: no shutdown, no cleanup (a crash).
 */
export interface Instance {
  /** for messages: `A`, `B`, ... */
  readonly name: string
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** server.ts's pid (not the watchdog's) */
  readonly pid: number
  /** the last lines it wrote to stdout and stderr (its pino log), oldest first */
  readonly logs: string[]
  /** whether server.ts is still running */
  readonly running: boolean
  /** resolves with server.ts's exit status (`128 + signal` when a signal ended it) */
  readonly exited: Promise<number>
  /** one HTTP request, its body read to the end (JSON parsed when it is JSON) */
  request (method: string, path: string, options?: RequestOptions): Promise<HttpAnswer>
  /** `ws://127.0.0.1:<port><path>` */
  wsUrl (path: string): string
  /** polls `/ready` until it answers 200 (Redis connected); rejects after `timeoutMs` */
  waitReady (timeoutMs?: number): Promise<void>
  /** SIGKILL server.ts and wait until it is gone */
  crash (): Promise<void>
  /** SIGTERM (graceful shutdown) and wait, SIGKILL after `timeoutMs`; safe to call twice */
  stop (timeoutMs?: number): Promise<void>
}

export interface RequestOptions {
  headers?: Record<string, string>
  /** an object is sent as JSON, a string as is */
  body?: unknown
  timeoutMs?: number
}

export interface HttpAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read any JSON answer's fields
  body: any
}

export interface StartOptions {
  name?: string
  /** how long start-up may take until the listening line (tsx compiles server.ts on a loaded machine); default 60 s */
  startTimeoutMs?: number
  /** pin server.ts to this CPU with `taskset -c` when taskset exists (benchmarks); it execs, so the pid stays */
  cpu?: number
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SERVER = fileURLToPath(new URL('../../server.ts', import.meta.url))
const LOG_LINES = 500

// The watchdog. fd 3 keeps the test's pipe for the watcher subshell alone (an asynchronous list's stdin is
// /dev/null in sh); server.ts gets neither. It prints server.ts's pid and, when server.ts ends, its exit status.
const WATCHDOG = [
  'exec 3<&0',
  '"$@" 3<&- </dev/null &',
  'pid=$!',
  'echo "gw-instance-pid $pid" >&2',
  '(',
  '  cat <&3',
  '  kill -TERM "$pid" 2>/dev/null || exit 0',
  '  i=0',
  '  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done',
  '  kill -KILL "$pid" 2>/dev/null',
  ') >/dev/null 2>&1 </dev/null &',
  'exec 3<&- </dev/null',
  'wait "$pid"',
  'code=$?',
  'echo "gw-instance-exit $code" >&2',
  'exit "$code"'
].join('\n')

/** Variables of server.ts's configuration: never inherited from the test's own environment. */
const CONFIG_VARIABLE = /^(PORT|HOST|GATEWAYS|LOG_LEVEL|TRUST_PROXY|ALLOWED_ORIGINS|AUTH_JWT_SECRET|PUBLIC_ROOMS|CLIENT_PUBLISH_ROOMS|PUBLIC_URL|HISTORY_\w+|REDIS_\w+|SHUTDOWN_\w+|WS_\w+|SSE_\w+|RTC_\w+|STRIPE_\w+|TWILIO_\w+|SMS_\w+|EXTERNAL_\w+|KAFKA_\w+)$/

/** tap's processinfo (which follows every spawned node process) writes no coverage for a child with this set to 0 */
export const NO_COVERAGE = '_TAPJS_PROCESSINFO_COVERAGE_'

let started = 0

/**
 * Starts server.ts with `env` (on top of `PORT=0 HOST=127.0.0.1 LOG_LEVEL=info`) and stops it in `t.after`.
 * Rejects when it exits or does not listen within `startTimeoutMs` (the rejection carries its last log lines).
 */
export async function startInstance (t: Pick<Test, 'after'>, env: Record<string, string>, options: StartOptions = {}): Promise<Instance> {
  const name = options.name ?? String.fromCharCode(65 + (started++ % 26))
  const base: NodeJS.ProcessEnv = {}
  // Configuration never goes through, and the child records no coverage: it compiles server.ts with tsx, whose
  // output differs from tap's own transpilation, and merging both garbles the line counts of the shared files.
  for (const [key, value] of Object.entries(process.env)) if (!CONFIG_VARIABLE.test(key)) base[key] = value
  base[NO_COVERAGE] = '0'
  const command = [process.execPath, '--import', 'tsx', SERVER]
  if (options.cpu !== undefined && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0) {
    command.unshift('taskset', '-c', String(options.cpu))
  }
  const child = spawn('sh', ['-c', WATCHDOG, 'gw-instance', ...command], {
    cwd: ROOT,
    env: { ...base, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['pipe', 'pipe', 'pipe']
  }) as ChildProcessWithoutNullStreams

  const logs: string[] = []
  let pid = 0
  let url = ''
  let exitCode: number | null = null
  const listeners = new Set<() => void>()
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      // the watchdog reports server.ts's status; its own exit is the fallback
      exitCode ??= code ?? (signal === null ? 1 : 128)
      for (const wake of [...listeners]) wake()
      resolve(exitCode)
    })
  })
  const onLine = (line: string) => {
    const marker = /^gw-instance-(pid|exit) (\d+)$/.exec(line)
    if (marker !== null) {
      if (marker[1] === 'pid') pid = Number(marker[2])
      else exitCode = Number(marker[2])
    } else {
      logs.push(line)
      if (logs.length > LOG_LINES) logs.splice(0, logs.length - LOG_LINES)
      if (url === '') {
        const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (listening !== null) url = listening[1]
      }
    }
    for (const wake of [...listeners]) wake()
  }
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      buffer += chunk
      let end: number
      while ((end = buffer.indexOf('\n')) !== -1) {
        onLine(buffer.slice(0, end))
        buffer = buffer.slice(end + 1)
      }
    })
  }
  child.stdin.on('error', () => {})

  let stopping: Promise<void> | null = null
  const stop = async (timeoutMs = 12_000): Promise<void> => {
    stopping ??= (async () => {
      child.stdin.end()
      if (exitCode === null && child.exitCode === null) {
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
        await Promise.race([exited, late])
        clearTimeout(timer)
        if (child.exitCode === null && pid > 0) {
          try { process.kill(pid, 'SIGKILL') } catch {}
        }
      }
      await exited
    })()
    await stopping
  }
  t.after(async () => { await stop() })

  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000)
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (url !== '' && pid > 0) {
        done()
        resolve()
      } else if (exitCode !== null || child.exitCode !== null) {
        done()
        reject(new Error(`instance ${name} exited (${exitCode ?? child.exitCode}) before listening:\n${logs.slice(-20).join('\n')}`))
      }
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`instance ${name} did not listen within ${options.startTimeoutMs ?? 60_000} ms:\n${logs.slice(-20).join('\n')}`))
    }, Math.max(deadline - Date.now(), 0))
    const done = () => {
      clearTimeout(timer)
      listeners.delete(check)
    }
    listeners.add(check)
    check()
  }).catch(async (err: unknown) => {
    await stop(2000)
    throw err
  })

  const port = Number(new URL(url).port)
  const instance: Instance = {
    name,
    url,
    port,
    pid,
    logs,
    get running () { return exitCode === null && child.exitCode === null },
    exited,
    request: async (method, path, requestOptions = {}) => await httpRequest(port, method, path, requestOptions),
    wsUrl: (path) => `ws://127.0.0.1:${port}${path}`,
    waitReady: async (timeoutMs = 15_000) => {
      await poll(async () => (await httpRequest(port, 'GET', '/ready').catch(() => ({ status: 0 }))).status === 200,
        timeoutMs, `instance ${name} /ready 200`)
    },
    crash: async () => {
      if (exitCode === null && child.exitCode === null) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
      await exited
      child.stdin.end()
    },
    stop
  }
  return instance
}

/** Starts several instances with the same environment at once (start-up is mostly tsx compiling). */
export async function startInstances (t: Pick<Test, 'after'>, count: number, env: Record<string, string>, options: StartOptions = {}): Promise<Instance[]> {
  const names = ['A', 'B', 'C', 'D', 'E', 'F']
  return await Promise.all(Array.from({ length: count }, async (_, i) => await startInstance(t, env, { ...options, name: names[i] ?? `I${i}` })))
}

/** Resolves once `predicate` holds, checking every `intervalMs`; rejects after `timeoutMs` naming `what`. */
export async function poll (predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** One HTTP request on a fresh connection (no keep-alive left behind), bounded by `timeoutMs`. */
export async function httpRequest (port: number, method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
  const headers: Record<string, string> = { ...(body !== undefined && typeof options.body !== 'string' ? { 'content-type': 'application/json' } : {}), ...options.headers }
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false, timeout: options.timeoutMs ?? 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = text === '' ? null : JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${path} on port ${port}: no answer within ${options.timeoutMs ?? 10_000} ms`)) })
    req.on('error', reject)
    req.end(body)
  })
}

/** One block of an event stream: `id`, `event`, `data` (parsed JSON when it is JSON), comments. */
export interface SseFrame {
  id?: string
  event?: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read an event's JSON data
  data?: any
  retry?: number
  comments: string[]
}

/**
 * An EventSource-like reader of `GET /sse...` for tests. Frames are read with a cursor like the ws `Frames`:
 * `next()` waits for the next frame that carries data (an event or a gap), `until(match)` skips to a matching one.
 */
export class SseClient {
  readonly frames: SseFrame[] = []
  readonly ended: Promise<void>
  status = 0
  headers: http.IncomingHttpHeaders = {}
  private cursor = 0
  private isEnded = false
  private wake: (() => void) | null = null
  private request: http.ClientRequest | null = null
  private readonly markEnded: () => void

  constructor (private readonly port: number, private readonly path: string, private readonly requestHeaders: Record<string, string> = {}) {
    let markEnded: () => void = () => {}
    this.ended = new Promise((resolve) => { markEnded = resolve })
    this.markEnded = () => {
      this.isEnded = true
      markEnded()
      this.wake?.()
    }
  }

  /**
   * Opens the stream; resolves once its first block (`retry:`) arrived, or the head of a refusal: the stream has
   * joined its rooms and knows where each stands by then (events published from then on reach it).
   */
  async open (timeoutMs = 10_000): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({
        host: '127.0.0.1', port: this.port, path: this.path, agent: false,
        headers: { accept: 'text/event-stream', ...this.requestHeaders }
      }, (res) => {
        clearTimeout(timer)
        this.status = res.statusCode ?? 0
        this.headers = res.headers
        let buffer = ''
        res.setEncoding('utf8')
        const streaming = this.status === 200 && String(res.headers['content-type']).startsWith('text/event-stream')
        res.on('data', (chunk: string) => {
          buffer += chunk
          let end: number
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            this.frames.push(parseFrame(buffer.slice(0, end)))
            buffer = buffer.slice(end + 2)
          }
          if (this.frames.length > 0) resolve()
          this.wake?.()
        })
        res.on('close', () => {
          this.markEnded()
          resolve()
        })
        res.on('error', () => {})
        if (!streaming) resolve()
      })
      const timer = setTimeout(() => { req.destroy(new Error(`GET ${this.path}: no answer within ${timeoutMs} ms`)) }, timeoutMs)
      req.on('error', (err) => {
        clearTimeout(timer)
        this.markEnded()
        reject(err)
      })
      this.request = req
    })
    return this
  }

  /** Whether the server ended the stream (or the connection broke). */
  get closed (): boolean {
    return this.isEnded
  }

  /** Frames that carry data, in order. */
  get events (): SseFrame[] {
    return this.frames.filter((frame) => frame.data !== undefined)
  }

  /** The next frame with data from the cursor on. */
  async next (timeoutMs = 5000): Promise<SseFrame> {
    return await this.until(() => true, timeoutMs)
  }

  /** The first frame with data from the cursor on that `match`es (earlier ones are skipped). */
  async until (match: (frame: SseFrame) => boolean, timeoutMs = 5000): Promise<SseFrame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++]
        if (frame.data !== undefined && match(frame)) return frame
      }
      if (this.isEnded) throw new Error(`stream ${this.path} ended before the frame came; got ${JSON.stringify(this.events.slice(-5))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame on ${this.path} within ${timeoutMs} ms; got ${JSON.stringify(this.events.slice(-5))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          this.wake = null
          resolve()
        }
      })
    }
  }

  /** Frames with data received and not read yet. */
  get unread (): SseFrame[] {
    return this.frames.slice(this.cursor).filter((frame) => frame.data !== undefined)
  }

  /** Drops the connection (what a browser does when the page goes away). */
  close (): void {
    this.request?.destroy()
  }
}

/** Opens an SSE stream on `port` and closes it in `t.after`. */
export async function openSse (t: Pick<Test, 'after'>, port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = new SseClient(port, path, headers)
  t.after(() => { client.close() })
  return await client.open()
}

function parseFrame (block: string): SseFrame {
  const frame: SseFrame = { comments: [] }
  let data: string | undefined
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trim())
      continue
    }
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') data = data === undefined ? value : `${data}\n${value}`
    else if (field === 'id' || field === 'event') frame[field] = value
    else if (field === 'retry') frame.retry = Number(value)
  }
  if (data !== undefined) {
    try {
      frame.data = JSON.parse(data)
    } catch {
      frame.data = data
    }
  }
  return frame
}

/** An HS256 token for `sub` (the tests' `AUTH_JWT_SECRET`), optionally with a `rooms` claim. */
export async function signToken (secret: string, sub: string, rooms?: string[]): Promise<string> {
  return await new SignJWT(rooms === undefined ? {} : { rooms })
    .setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt()
    .sign(new TextEncoder().encode(secret))
}

/** A ws client of `instance` (`?token=` when given), past its `hello` frame; terminated in `t.after`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read any field of the hello frame
export async function connectWs (t: Pick<Test, 'after'>, instance: Instance, token?: string): Promise<Frames & { hello: any }> {
  const frames = await openWs(instance.wsUrl(token === undefined ? '/ws' : `/ws?token=${encodeURIComponent(token)}`))
  t.after(() => { frames.ws.terminate() })
  const hello = await frames.next(10_000)
  if (hello.op !== 'hello') throw new Error(`expected hello from ${instance.name}, got ${JSON.stringify(hello)}`)
  return Object.assign(frames, { hello })
}

/** Joins `room` (with `since` to resume) and returns the `joined` frame; throws on an `error` frame. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read any field of the joined frame
export async function joinRoom (frames: Frames, room: string, since?: string): Promise<any> {
  const ref = `join-${room}-${Math.random().toString(36).slice(2, 8)}`
  frames.send({ op: 'join', room, ref, ...(since === undefined ? {} : { since }) })
  const answer = await frames.until((frame) => frame.ref === ref, 10_000)
  if (answer.op !== 'joined') throw new Error(`join ${room} refused: ${JSON.stringify(answer)}`)
  return answer
}

/** The external HTTP API of the instances, with one API key: publish (the 202 body) and a room's presence. */
export function roomsApi (auth: Record<string, string>) {
  return {
    async publish (instance: Instance, room: string, event: string, data: unknown, headers: Record<string, string> = {}): Promise<{ id: string, delivered: number }> {
      const answer = await instance.request('POST', `/api/rooms/${room}/events`, { headers: { ...auth, ...headers }, body: { event, data } })
      if (answer.status !== 202) throw new Error(`publish on ${instance.name} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
      return answer.body as { id: string, delivered: number }
    },
    async presence (instance: Instance, room: string): Promise<{ members: number, users: string[] }> {
      const answer = await instance.request('GET', `/api/rooms/${room}`, { headers: auth })
      if (answer.status !== 200) throw new Error(`presence on ${instance.name} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
      return { members: answer.body.members, users: [...answer.body.users].sort() }
    }
  }
}

/** An rtc signaling client of `instance`, past `hello` (its `conn` is its peer id); terminated in `t.after`. */
export async function connectRtc (t: Pick<Test, 'after'>, instance: Instance): Promise<Frames & { peer: string }> {
  const frames = await openWs(instance.wsUrl('/rtc'))
  t.after(() => { frames.ws.terminate() })
  const hello = await frames.next(10_000)
  if (hello.op !== 'hello') throw new Error(`expected hello from ${instance.name}, got ${JSON.stringify(hello)}`)
  return Object.assign(frames, { peer: hello.conn as string })
}
