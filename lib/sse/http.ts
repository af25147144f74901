import { ServerResponse, type OutgoingHttpHeaders } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import type { SseTarget } from './writer.js'

/** Headers of every event stream: the type, no caching, and no proxy buffering (nginx honours X-Accel-Buffering). */
export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no'
})

export interface EventStreamResponse {
  /** where the stream's chunks are written */
  readonly target: SseTarget
  /** `end`: finish after what is written (the connection closes); `destroy`: close the connection now */
  end (how: 'end' | 'destroy'): void
  /** `listener` runs once when the connection is gone, whoever ended it */
  onClose (listener: () => void): void
}

/**
 * Commits `res` as an event stream: status 200 and `headers`, flushed at once. Null when the client is gone already.
 *
 * Over HTTP/1.x the body is not chunk-framed but delimited by the connection's close (`Connection: close`), which is
 * what an endless stream is anyway; the one encoded buffer of each event can then go to the socket exactly as it
 * is, without a per-write chunk header: one `write` per event and stream. Over HTTP/2 the response is written to.
 */
export function startEventStream (res: ServerResponse | Http2ServerResponse, headers: OutgoingHttpHeaders): EventStreamResponse | null {
  if (res instanceof ServerResponse) {
    const socket = res.socket
    if (socket === null || socket.destroyed || res.headersSent) return null
    res.useChunkedEncodingByDefault = false
    res.writeHead(200, headers)
    res.flushHeaders()
    return {
      target: socket,
      end: (how) => { if (how === 'end') res.end(); else res.destroy() },
      onClose: (listener) => { res.once('close', listener) }
    }
  }
  if (res.stream.destroyed || res.headersSent) return null
  res.writeHead(200, headers)
  return {
    target: res,
    end: (how) => { if (how === 'end') res.end(); else res.stream.close() },
    onClose: (listener) => { res.once('close', listener) }
  }
}
