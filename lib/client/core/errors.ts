/**
 * The codes a GatewayError may carry: those of the server's `error` frames and HTTP answers (docs/protocol.md), and
 * the client's own.
 */
export type GatewayErrorCode =
  | 'BAD_MESSAGE' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED' | 'TOO_LARGE' | 'NOT_FOUND' | 'ROOM_FULL'
  | 'UNAVAILABLE' | 'DISCONNECTED' | 'TIMEOUT' | 'CLOSED' | 'LEFT' | 'QUEUE_FULL' | 'NETWORK' | 'TOKEN'
  | 'BAD_RESPONSE' | 'RTC' | (string & Record<never, never>)

export interface GatewayErrorDetails {
  status?: number
  room?: string
  ref?: string | number
}

/**
 * An error of the gateway (`code` from the server's `error` frame or HTTP answer) or of the client itself:
 * `DISCONNECTED` (the socket closed before the answer), `TIMEOUT`, `CLOSED` (client closed), `LEFT` (room left
 * while its join was pending), `QUEUE_FULL`, `NETWORK`, `HTTP_<status>`, `TOKEN` (the token function threw).
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError' as const
  code: GatewayErrorCode
  /** HTTP status (sse, ice servers) */
  declare status?: number
  /** the room of a refused join */
  declare room?: string
  /** the `ref` of the frame the server answered */
  declare ref?: string | number

  constructor (code: GatewayErrorCode, message: string, details: GatewayErrorDetails = {}) {
    super(message)
    this.code = code
    if (details.status !== undefined) this.status = details.status
    if (details.room !== undefined) this.room = details.room
    if (details.ref !== undefined) this.ref = details.ref
  }
}

/** The message of anything thrown. */
export function messageOf (err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/** A failed HTTP answer as a GatewayError: `code` and `message` from a JSON body when it has them. */
export async function httpError (response: Response): Promise<GatewayError> {
  let message = `HTTP ${response.status}`
  let code = `HTTP_${response.status}`
  try {
    const body: unknown = await response.json()
    if (isRecord(body)) {
      if (typeof body.message === 'string') message = body.message
      if (typeof body.code === 'string') code = body.code
    }
  } catch {}
  return new GatewayError(code, message, { status: response.status })
}

/** A parsed JSON value that is an object (not null, not an array). */
export function isRecord (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
