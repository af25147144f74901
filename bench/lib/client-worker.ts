// A client process of the fan-out benchmarks (pinned by the parent): holds many connections to one server and counts
// the events they receive. `node --import tsx bench/lib/client-worker.ts <ws|sio|sse> <port> <path>`.
// Commands (proc.ts): connect { count, concurrency }, arm { perConn, latency }, wait, report, close, clock, exit.
//   ws:  `ws` client, permessage-deflate off; sends {"op":"join","room":ROOM}, waits for {"op":"joined"}
//   sio: socket.io-client, transports ['websocket']; emits 'join' with an ack
//   sse: plain http.get reading the event stream; ready at the `retry:` block (the stream has joined by then)
import { get, type IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { nowUs, serveParent } from './proc.js'
import { EVENT, ROOM } from './servers.js'

const [mode, port, path] = process.argv.slice(2) as ['ws' | 'sio' | 'sse', string, string]
const closers: Array<() => void> = []
let open = 0
let lost = 0

let count = 0
let target = Infinity
let samples: Float64Array | null = null
let finish: (() => void) | null = null
let result: object | null = null
const waiters: Array<() => void> = []

/** one event arrived; `t` is the publish time in µs when latency is sampled */
function onEvent (t: number): void {
  const n = count++
  if (samples !== null && n < samples.length) samples[n] = nowUs() - t
  if (count === target && finish !== null) finish()
}

/** `"t":<µs>` from an event's text (every kind puts `t` first in its data object) */
function readT (text: string): number {
  const at = text.indexOf('"t":')
  return at < 0 ? NaN : parseInt(text.slice(at + 4, at + 24), 10)
}

function connectWs (): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false, skipUTF8Validation: true })
    let joined = false
    socket.on('open', () => { socket.send(JSON.stringify({ op: 'join', room: ROOM })) })
    socket.on('message', (data: Buffer) => {
      if (joined) {
        onEvent(samples === null ? 0 : readT(data.toString('latin1')))
      } else if (data.includes('"op":"joined"')) {
        joined = true
        open++
        resolve()
      }
    })
    socket.on('error', (err) => { if (!joined) reject(err) })
    socket.on('close', () => { if (joined) lost++ })
    closers.push(() => { socket.terminate() })
  })
}

async function connectSio (): Promise<void> {
  const { io } = await import('socket.io-client')
  await new Promise<void>((resolve, reject) => {
    const socket = io(`http://127.0.0.1:${port}`, { path, transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000, perMessageDeflate: false } as object)
    let joined = false
    socket.on('connect', () => {
      socket.emit('join', ROOM, () => {
        joined = true
        open++
        resolve()
      })
    })
    socket.on(EVENT, (data: { t: number }) => { if (joined) onEvent(samples === null ? 0 : data.t) })
    socket.on('connect_error', (err) => { reject(err) })
    socket.on('disconnect', () => { if (joined) lost++ })
    closers.push(() => { socket.disconnect() })
  })
}

function connectSse (): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port: Number(port), path, agent: false, headers: { accept: 'text/event-stream' } }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        reject(new Error(`sse answered ${res.statusCode}`))
        res.resume()
        return
      }
      res.setEncoding('latin1')
      let ready = false
      let buffer = ''
      res.on('data', (chunk: string) => {
        buffer = buffer.length === 0 ? chunk : buffer + chunk
        let from = 0
        let end: number
        while ((end = buffer.indexOf('\n\n', from)) !== -1) {
          if (buffer.startsWith('id:', from)) {
            onEvent(samples === null ? 0 : readT(buffer.slice(from, end)))
          } else if (!ready && buffer.startsWith('retry:', from)) {
            ready = true
            open++
            resolve()
          }
          from = end + 2
        }
        buffer = from === buffer.length ? '' : buffer.slice(from)
      })
      res.on('close', () => { if (ready) lost++ })
    })
    request.on('error', (err) => { reject(err) })
    closers.push(() => { request.destroy() })
  })
}

const connectOne = mode === 'ws' ? connectWs : mode === 'sio' ? connectSio : connectSse

serveParent({
  /** opens `count` more connections, `concurrency` at a time, and resolves when all of them are in the room */
  async connect ({ count: wanted, concurrency }) {
    let next = 0
    const lane = async () => {
      while (next < wanted) {
        next++
        await connectOne()
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, wanted) }, lane))
    return { open, lost }
  },
  /**
   * Resets the counter for the next phase: done once every open connection has received `perConn` events; with
   * `latency`, each delivery's publish-to-receive time (µs) is kept. Answers at once, before anything is published.
   */
  arm ({ perConn, latency }) {
    count = 0
    target = perConn * open
    samples = latency === true ? new Float64Array(target) : null
    result = null
    finish = () => {
      finish = null
      result = { count, lastUs: nowUs(), lost, samples: samples ?? undefined }
      samples = null
      for (const wake of waiters.splice(0)) wake()
    }
    return { target }
  },
  /** resolves when the armed phase is complete, with the time of its last delivery and the latency samples */
  async wait () {
    if (result === null) await new Promise<void>((resolve) => { waiters.push(resolve) })
    return result as object
  },
  /** where the counter is now (after a `wait` timed out) */
  report () {
    finish = null
    const result = { count, lastUs: nowUs(), lost, samples: samples === null ? undefined : samples.subarray(0, Math.min(count, samples.length)) }
    samples = null
    return result
  },
  close () {
    for (const close of closers) close()
    return {}
  }
})
