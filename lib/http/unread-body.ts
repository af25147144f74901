/**
 * Early refusals do not read request bodies (docs/security.md, "Refused requests"). A request answered before its
 * body was read (a 401 from an API-key check in `preParsing`, a 404, a 403 from a hook) would otherwise keep its
 * kept-alive connection, and Node would read and discard the whole body, whatever its size, before the next request
 * could come: a client could make the server swallow gigabytes through a refusal. The answer carries
 * `Connection: close` instead, so the connection ends once the answer is sent and nothing more is read.
 */

/** What the hook needs of a Fastify request and reply (structural: this module imports no framework). */
interface RequestLike {
  raw: { complete: boolean, headers: Record<string, string | string[] | undefined>, httpVersionMajor: number }
}
interface ReplyLike {
  hasHeader (name: string): boolean
  header (name: string, value: string): unknown
}

/** True when `raw` announced a body (a length or chunked transfer) that has not been received in full. */
export function hasUnreadBody (raw: RequestLike['raw']): boolean {
  if (raw.complete) return false
  const length = raw.headers['content-length']
  return (typeof length === 'string' && length !== '0') || raw.headers['transfer-encoding'] !== undefined
}

/** An `onSend` hook: the answer to a request whose body is still unread closes its connection (HTTP/1.x). */
export async function closeOnUnreadBody (request: RequestLike, reply: ReplyLike): Promise<void> {
  if (request.raw.httpVersionMajor < 2 && hasUnreadBody(request.raw)) reply.header('connection', 'close')
}
