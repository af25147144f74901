// A client process of the fan-out and connect benchmarks (pinned by the parent): holds many connections to one server
// and counts the events they receive. `node --import tsx bench/lib/client-worker.ts <raw|ws|sio|sse> <port> <path>`.
// Commands (proc.ts): connect { count, concurrency }, arm { perConn, latency }, wait, report, close, clock, exit.
//   raw: a lean WebSocket client on a bare TCP socket (lib below): the upgrade request, then {"op":"join","room":ROOM}
//        as one masked frame; ready once `hello` and `joined` arrived. It spends a fraction of the `ws` client's CPU
//        per connection and per frame, so the client core is not what limits a connect or fan-out run;
//   ws:  the `ws` client, permessage-deflate off; sends the join on open, ready once `hello` and `joined` arrived;
//   sio: socket.io-client, transports ['websocket']; emits 'join' with an ack;
//   sse: plain http.get reading the event stream; ready at the `retry:` block (the stream has joined by then).
import { get, type IncomingMessage } from 'node:http'
import { connect as tcpConnect } from 'node:net'
import WebSocket from 'ws'
import { nowUs, serveParent } from './proc.js'
import { EVENT, ROOM } from './servers.js'

const [mode, port, path] = process.argv.slice(2) as ['raw' | 'ws' | 'sio' | 'sse', string, string]
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

/**
 * The way into the room both ws clients take before they count events: `hello`, then `joined` (the connection is
 * counted open then). Returns the handler of the text frames until then: true once joined.
 */
function joinWatch (done: () => void, fail: (err: Error) => void): (text: Buffer) => boolean {
  let hello = false
  return (text) => {
    if (text.includes('"op":"hello"')) {
      hello = true
    } else if (text.includes('"op":"joined"')) {
      if (!hello) {
        fail(new Error('joined before hello'))
        return false
      }
      open++
      done()
      return true
    }
    return false
  }
}

function connectWs (): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false, skipUTF8Validation: true })
    let joined = false
    const watch = joinWatch(resolve, reject)
    socket.on('open', () => { socket.send(JSON.stringify({ op: 'join', room: ROOM })) })
    socket.on('message', (data: Buffer) => {
      if (joined) {
        onEvent(samples === null ? 0 : readT(data.toString('latin1')))
        return
      }
      joined = watch(data)
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

const UPGRADE = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', 'latin1')
const JOIN = maskedFrame(1, Buffer.from(JSON.stringify({ op: 'join', room: ROOM })))

/** A client frame (clients must mask): FIN, `opcode`, the mask bit with an all-zero key, which leaves the payload as is. */
function maskedFrame (opcode: number, payload: Buffer): Buffer {
  if (payload.length > 125) throw new Error('raw client frames are at most 125 bytes')
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length, 0, 0, 0, 0]), payload])
}

/**
 * The lean WebSocket client: no handshake key check, no UTF-8 validation, frames parsed in place. Server frames are
 * unmasked; a ping is answered with a pong, a close ends the socket.
 */
function connectRaw (): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port: Number(port), noDelay: true })
    let upgraded = false
    let joined = false
    const watch = joinWatch(resolve, (err) => { fail(err) })
    let rest: Buffer | null = null
    const frame = (opcode: number, payload: Buffer) => {
      if (opcode === 1) {
        if (joined) onEvent(samples === null ? 0 : readT(payload.toString('latin1', 0, Math.min(payload.length, 256))))
        else joined = watch(payload)
      } else if (opcode === 9) {
        socket.write(maskedFrame(10, payload))
      } else if (opcode === 8) {
        socket.end()
      }
    }
    const fail = (err: Error) => {
      if (!joined) reject(err)
      socket.destroy()
    }
    socket.on('connect', () => { socket.write(Buffer.concat([UPGRADE, JOIN])) })
    socket.on('data', (chunk: Buffer) => {
      let buf = rest === null ? chunk : Buffer.concat([rest, chunk])
      rest = null
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) {
          rest = buf
          return
        }
        if (buf.toString('latin1', 0, 12) !== 'HTTP/1.1 101') {
          fail(new Error(`upgrade refused: ${buf.toString('latin1', 0, buf.indexOf('\r\n'))}`))
          return
        }
        upgraded = true
        buf = buf.subarray(end + 4)
      }
      let at = 0
      while (buf.length - at >= 2) {
        const opcode = buf[at] & 0x0f
        let len = buf[at + 1] & 0x7f
        let head = 2
        if (len === 126) {
          if (buf.length - at < 4) break
          len = buf.readUInt16BE(at + 2)
          head = 4
        } else if (len === 127) {
          if (buf.length - at < 10) break
          len = Number(buf.readBigUInt64BE(at + 2))
          head = 10
        }
        if (buf.length - at < head + len) break
        frame(opcode, buf.subarray(at + head, at + head + len))
        at += head + len
      }
      if (at < buf.length) rest = Buffer.from(buf.subarray(at))
    })
    socket.on('error', (err) => { fail(err) })
    socket.on('close', () => { if (joined) lost++ })
    closers.push(() => { socket.destroy() })
  })
}

const connectOne = mode === 'raw' ? connectRaw : mode === 'ws' ? connectWs : mode === 'sio' ? connectSio : connectSse

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
