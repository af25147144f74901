import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'

/**
 * The shutdown side of the socket gateways (docs/security.md, "Shutdown"), kept apart from the route wiring.
 *
 * - Upgrades that arrive while the server shuts down: @fastify/websocket stops routing upgrades at the start of
 *   `close()` (its preClose removes its `upgrade` listener), and Node hands an upgrade request with a listener left
 *   to that listener alone. Nothing would ever answer it, and `server.close()` would wait for its socket until the
 *   process is killed. `UpgradeGuard` answers such a request `503` with `Connection: close` and ends its socket.
 * - Closing: `startClosing` sends the close frames to every socket AT ONCE and returns the promise of them all
 *   being closed, so one gateway's slow clients do not hold the next gateway's shutdown (SSE streams end while the
 *   WebSocket close handshakes run); the caller awaits it later (onClose).
 */

const SERVICE_UNAVAILABLE = '{"statusCode":503,"error":"Service Unavailable","message":"the server is shutting down"}'
const REFUSAL = Buffer.from(
  'HTTP/1.1 503 Service Unavailable\r\n' +
  'Connection: close\r\n' +
  'Content-Type: application/json; charset=utf-8\r\n' +
  'Retry-After: 1\r\n' +
  `Content-Length: ${Buffer.byteLength(SERVICE_UNAVAILABLE)}\r\n\r\n` +
  SERVICE_UNAVAILABLE
)

type UpgradeSocket = Duplex & { _httpMessage?: ServerResponse | null, destroySoon?: () => void }

/** Ends `socket` once what was written to it is flushed. */
function endSoon (socket: UpgradeSocket): void {
  if (typeof socket.destroySoon === 'function') socket.destroySoon()
  else socket.end()
}

/**
 * The server's last `upgrade` listener of the socket gateways. Upgrades answered over plain HTTP (a refusal in a hook,
 * a 404) get their socket closed once the answer is flushed; upgrades nobody took while closing are refused with 503.
 */
export class UpgradeGuard {
  private closing = false

  /** The `upgrade` listener: register it after @fastify/websocket's own. */
  readonly listener = (_request: IncomingMessage, socket: Duplex): void => {
    const net = socket as UpgradeSocket
    const response = net._httpMessage
    if (response !== undefined && response !== null) {
      // An upgrade request answered over plain HTTP before @fastify/websocket's `onRequest` hook saw it (a host hook
      // registered earlier, a 404) keeps its socket open forever: @fastify/websocket only destroys the sockets of
      // requests it has marked, and nothing else ends a socket handed to a hand-made ServerResponse. A real upgrade
      // hijacks that response and never finishes it, so a finished one means "answered, not upgraded".
      response.once('finish', () => { endSoon(net) })
      return
    }
    // no response: no listener before this one routed the request, which happens only once closing has begun
    if (this.closing && !net.destroyed && net.writable) {
      net.write(REFUSAL)
      endSoon(net)
    }
  }

  /** From now on, upgrades nobody routes are refused: call it before @fastify/websocket stops routing them. */
  close (): void {
    this.closing = true
  }
}

/** What `startClosing` needs of a ws WebSocket. */
export interface ClosableSocket {
  readonly readyState: number
  close (code: number, reason: string): void
  terminate (): void
  once (event: 'close', listener: () => void): unknown
}

const CLOSED = 3
const OPEN = 1

/**
 * Sends `code` to every socket of `sockets` now and resolves when all are closed, terminating those still open after
 * `timeoutMs`. The close frames all leave before the first await: a caller may await the result later (or not here).
 */
export function startClosing (sockets: readonly ClosableSocket[], code: number, reason: string, timeoutMs: number): Promise<void> {
  const waiting = sockets.filter((socket) => socket.readyState !== CLOSED)
  if (waiting.length === 0) return Promise.resolve()
  return new Promise<void>((resolve) => {
    let left = waiting.length
    const timer = setTimeout(() => {
      for (const socket of waiting) if (socket.readyState !== CLOSED) socket.terminate()
    }, timeoutMs)
    timer.unref()
    const done = () => {
      if (--left === 0) {
        clearTimeout(timer)
        resolve()
      }
    }
    for (const socket of waiting) {
      socket.once('close', done)
      if (socket.readyState === OPEN) socket.close(code, reason)
    }
  })
}
