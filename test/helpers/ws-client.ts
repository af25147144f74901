import WebSocket from 'ws'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed JSON frame: each test asserts its shape with t.match/t.same
export type Frame = any

/**
 * The frames a test WebSocket receives, in arrival order, read with a cursor: `next()` is the next frame (waiting for
 * it with a bounded timeout), `until(match)` skips to the first frame that matches. `closed` settles with the close
 * code and reason. Attach it before the socket can receive anything (injectWS: in `onInit`).
 */
export class Frames {
  readonly all: Frame[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  private cursor = 0
  private wake: (() => void) | null = null
  private closeInfo: { code: number, reason: string } | null = null

  constructor (readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8')
      this.all.push(isBinary ? { binary: text } : JSON.parse(text))
      this.wake?.()
    })
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() }
        resolve(this.closeInfo)
        this.wake?.()
      })
    })
    ws.on('error', () => {})
  }

  /** Sends one frame: an object is sent as JSON text, a string or Buffer as is. */
  send (frame: unknown, options: { binary?: boolean } = {}): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame), options)
  }

  /** The next frame in arrival order. */
  async next (timeoutMs = 5000): Promise<Frame> {
    return await this.until(() => true, timeoutMs)
  }

  /** The first frame from the cursor on that `match`es (earlier ones are skipped). */
  async until (match: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      while (this.cursor < this.all.length) {
        const frame = this.all[this.cursor++]
        if (match(frame)) return frame
      }
      if (this.closeInfo !== null) throw new Error(`socket closed (${this.closeInfo.code}) before the frame came`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.all.slice(-5))}`)
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

  /** Sends `frame` and returns the next frame. */
  async request (frame: unknown, timeoutMs = 5000): Promise<Frame> {
    this.send(frame)
    return await this.next(timeoutMs)
  }

  /** Frames received and not read yet. */
  get unread (): Frame[] {
    return this.all.slice(this.cursor)
  }

  /** Resolves with the close info, failing after `timeoutMs`. */
  async waitClose (timeoutMs = 5000): Promise<{ code: number, reason: string }> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`socket not closed within ${timeoutMs} ms`)) }, timeoutMs)
    })
    try {
      return await Promise.race([this.closed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Opens a real WebSocket to `url` with its frames attached; rejects with the HTTP status on a refused upgrade. */
export async function openWs (url: string, options: WebSocket.ClientOptions = {}): Promise<Frames> {
  const ws = new WebSocket(url, options)
  const frames = new Frames(ws)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => {
        reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { statusCode: res.statusCode, body }))
      })
    })
    ws.once('error', reject)
  })
  return frames
}

/** Resolves when `predicate` is true, checking after each event-loop turn, failing after `timeoutMs`. */
export async function waitFor (predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
