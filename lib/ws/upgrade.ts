import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'

/**
 * A listener for the HTTP server's `upgrade` event, added after the WebSocket server's own. An upgrade request
 * answered over plain HTTP before the WebSocket server took it (a host hook registered earlier, a 404, a 401/403
 * from the admission check) keeps its socket open forever: @fastify/websocket only destroys the sockets of requests it
 * has marked, and nothing else ends a socket handed to a hand-made ServerResponse. A real upgrade hijacks that
 * response and never finishes it, so a finished one means "answered, not upgraded": close the socket once flushed.
 */
export function endAnsweredUpgrade (_request: IncomingMessage, socket: Duplex): void {
  const response = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
  if (response === undefined || response === null) return
  response.once('finish', () => {
    const net = socket as Duplex & { destroySoon?: () => void }
    if (typeof net.destroySoon === 'function') net.destroySoon()
    else socket.end()
  })
}
