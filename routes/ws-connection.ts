import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { Authenticate, GatewayUser } from '../lib/auth/user.js'
import { createOriginPolicy } from '../lib/auth/origin.js'
import { extractToken } from '../lib/auth/token.js'
import { IpCounter } from '../lib/limits/ip-counter.js'
import { GatewayErrors } from '../lib/errors.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { SocketConnection, type ConnectionLimits, type OpHandler } from '../lib/ws/connection.js'
import type { RoomAccess } from '../lib/ws/access.js'
import type { Ref } from '../lib/ws/protocol.js'
import { UpgradeGuard, startClosing } from '../lib/ws/shutdown.js'

/**
 * The Fastify side of a socket gateway (ws, rtc), shared so each gateway only writes its ops.
 *
 *   await ensureWebsocket(app, { maxPayload, closeTimeoutMs })          // in the plugin's outer (fp) function
 *   await app.register(async (scope) => {
 *     const route = socketRoute(scope, { path: '/rtc', transport: 'rtc', registry, ops: { join, leave, signal }, ... })
 *   })
 *
 * `socketRoute` adds one WebSocket route whose `onRequest` hook refuses a disallowed Origin (403), a bad token (401)
 * and an address over its connection limit (429) before the upgrade; each accepted socket becomes a
 * `SocketConnection` (lib/ws/connection.ts) that sends `hello`, handles `auth` and `ping` itself and hands every other
 * op to `ops`. It pings every `pingMs` (an unanswered ping ends the connection) and, on close, closes its sockets with
 * 1001 and waits for them (at most `closeTimeoutMs`) in `preClose`.
 */

export interface SocketRouteOptions {
  /** the route of the upgrade, e.g. '/ws' */
  path: string
  /** member transport name, e.g. 'ws' */
  transport: string
  registry: RoomRegistry
  /** verifies `?token=`/Bearer before the upgrade and `auth` frames after it; absent: everyone is anonymous */
  authenticate?: Authenticate
  /** Origins allowed besides same-origin; `*` allows every origin */
  allowedOrigins: readonly string[]
  limits: ConnectionLimits & {
    /** server ping interval; a peer that answers nothing for a whole interval is terminated */
    pingMs: number
    /** open connections per client address on this route */
    maxConnectionsPerIp: number
  }
  /** how long shutdown waits for clients to answer the 1001 close before terminating them */
  closeTimeoutMs: number
  /** the gateway's ops (`auth` and `ping` are built in) */
  ops: Record<string, OpHandler>
  /** after `hello` was sent */
  onConnection?: (conn: SocketConnection, request: FastifyRequest) => void
  /** once per connection, when it leaves its rooms (closing or gone) */
  onEnd?: (conn: SocketConnection, rooms: string[]) => void
  /** a direct message (`registry.direct(conn.id, message)`) for this connection */
  onDirect?: (conn: SocketConnection, message: unknown) => void
}

export interface SocketRoute {
  /** open connections of this route */
  readonly connections: ReadonlySet<SocketConnection>
}

export interface EnsureWebsocketOptions {
  /** ws's own frame limit (close 1009 before the frame is buffered); the largest of the gateways' limits */
  maxPayload: number
  /** how long a closing socket may take to finish before it is destroyed */
  closeTimeoutMs: number
}

/**
 * Registers @fastify/websocket on `app` unless some plugin already did (`websocketServer` is decorated), so the ws and
 * rtc gateways share the server's single `upgrade` listener. Call it from the plugin's outer (fastify-plugin)
 * function so it lands in the host's scope. Registered here: permessage-deflate off (frame-once fan-out needs
 * uncompressed frames), `maxPayload`, and a preClose that closes every client with 1001 and waits for it.
 * When the host registered @fastify/websocket itself, its settings stand; each gateway still enforces its own
 * `maxPayload` (error TOO_LARGE, close 1009) and closes its own sockets with 1001 (unless the host's preClose ran first).
 */
export async function ensureWebsocket (app: FastifyInstance, options: EnsureWebsocketOptions): Promise<void> {
  if (app.hasDecorator('websocketServer')) {
    const current = app.websocketServer.options.maxPayload
    if (typeof current === 'number' && current < options.maxPayload) {
      app.log.warn({ maxPayload: options.maxPayload, websocketMaxPayload: current },
        'the registered @fastify/websocket has a smaller maxPayload than this gateway: the smaller one applies')
    }
    return
  }
  // shutdown (lib/ws/shutdown.ts): registered before @fastify/websocket's preClose, which stops routing upgrades
  const guard = new UpgradeGuard()
  app.addHook('preClose', async () => { guard.close() })
  let closed: Promise<void> = Promise.resolve()
  await app.register(websocket, {
    // closeTimeout (ws 8.18+) is missing from @types/ws
    options: { maxPayload: options.maxPayload, perMessageDeflate: false, ...{ closeTimeout: options.closeTimeoutMs } as object },
    errorHandler (error, socket, request) {
      // protocol errors of a client (bad frame, oversize frame): ws has already started closing with the right code
      request.log.info({ reason: error.message, code: (error as { code?: string }).code }, 'websocket client error')
      if (socket.readyState === 1) socket.terminate()
    },
    preClose: async function closeGoingAway (this: FastifyInstance) {
      const wss = this.websocketServer
      // every socket is told now; the wait is in onClose, so other gateways' shutdown (SSE) does not queue behind it
      closed = startClosing([...wss.clients], 1001, 'server shutting down', options.closeTimeoutMs)
      wss.close()
    }
  })
  app.addHook('onClose', async () => { await closed })
  // Registered after @fastify/websocket's own listener, so the socket already carries its response.
  app.server.on('upgrade', guard.listener)
  app.addHook('onClose', async () => { app.server.off('upgrade', guard.listener) })
}

/** Closes `sockets` with `code` and resolves when all are closed, terminating the ones still open after `timeoutMs`. */
export async function closeSockets (sockets: readonly WebSocket[], code: number, reason: string, timeoutMs: number): Promise<void> {
  await startClosing(sockets, code, reason, timeoutMs)
}

/** Adds the gateway's WebSocket route to `scope` (an encapsulated scope of the gateway plugin). */
export function socketRoute (scope: FastifyInstance, options: SocketRouteOptions): SocketRoute {
  const { registry, authenticate, limits } = options
  const origins = createOriginPolicy(options.allowedOrigins)
  const perIp = new IpCounter(limits.maxConnectionsPerIp)
  const users = new WeakMap<FastifyRequest, GatewayUser | null>()
  const connections = new Set<SocketConnection>()

  async function gate (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const origin = request.headers.origin
    if (!origins.allowed(origin, request.headers.host)) {
      request.log.info({ origin }, 'websocket upgrade refused: origin not allowed')
      throw new GatewayErrors.WS_ORIGIN_FORBIDDEN(JSON.stringify(origin))
    }
    if (perIp.count(addressOf(request)) >= limits.maxConnectionsPerIp) {
      throw new GatewayErrors.WS_TOO_MANY_CONNECTIONS(limits.maxConnectionsPerIp)
    }
    if (authenticate === undefined) return
    const token = extractToken(request.query, request.headers.authorization)
    let user: GatewayUser | null
    try {
      user = await authenticate(token, request)
    } catch (err) {
      const reason = authFailure(err)
      request.log.info({ reason }, 'websocket upgrade refused: authentication failed')
      throw new GatewayErrors.WS_UNAUTHENTICATED(reason)
    }
    if (token !== null && user === null) throw new GatewayErrors.WS_UNAUTHENTICATED('no user for this token')
    users.set(request, user)
  }

  scope.get(options.path, { websocket: true, onRequest: gate }, (socket, request) => {
    const address = addressOf(request)
    if (!perIp.acquire(address)) {
      // a race with other upgrades from the same address since the hook counted
      socket.close(1013, 'too many connections')
      return
    }
    const conn = new SocketConnection(socket, {
      id: registry.nextMemberId(),
      transport: options.transport,
      user: users.get(request) ?? null,
      registry,
      limits,
      ops: options.ops,
      ...(authenticate === undefined ? {} : { authenticate: (token: string) => authenticate(token, request) }),
      ...(options.onDirect === undefined ? {} : { onDirect: options.onDirect }),
      ...(options.onEnd === undefined ? {} : { onEnd: options.onEnd }),
      log: request.log
    })
    connections.add(conn)
    socket.on('message', (data, isBinary) => { conn.receive(data as Buffer, isBinary) })
    socket.on('pong', () => { conn.alive = true })
    socket.once('close', () => {
      connections.delete(conn)
      perIp.release(address)
      conn.end()
    })
    conn.start()
    options.onConnection?.(conn, request)
  })

  const ping = setInterval(() => {
    for (const conn of connections) conn.heartbeat()
  }, limits.pingMs)
  ping.unref()

  // told at once, awaited in onClose (lib/ws/shutdown.ts)
  let closed: Promise<void> = Promise.resolve()
  scope.addHook('preClose', async () => {
    closed = startClosing([...connections].map((conn) => conn.socket), 1001, 'server shutting down', options.closeTimeoutMs)
  })
  scope.addHook('onClose', async () => {
    clearInterval(ping)
    await closed
  })

  return { connections }
}

function addressOf (request: FastifyRequest): string {
  return request.ip ?? request.socket?.remoteAddress ?? 'unknown'
}

/** The reason of a refused credential, safe to send and log (never the token). */
function authFailure (err: unknown): string {
  const e = err as { statusCode?: number, message?: unknown }
  return e?.statusCode === 401 && typeof e.message === 'string' ? e.message : 'invalid token'
}

/**
 * The admission of a `join` shared by ws and rtc: within the connection's rooms limit and allowed by `access`;
 * otherwise `FORBIDDEN` (with `ref`) and false. A join rule that throws counts as a refusal, and is logged.
 */
export async function admitJoin (conn: SocketConnection, room: string, ref: Ref | undefined,
  options: { access: RoomAccess, maxRooms: number, log: FastifyBaseLogger }): Promise<boolean> {
  if (!conn.rooms.has(room) && conn.rooms.size >= options.maxRooms) {
    conn.fail('FORBIDDEN', `a connection may be in at most ${options.maxRooms} rooms`, ref)
    return false
  }
  let allowed: boolean
  try {
    allowed = await options.access.canJoin(conn.user, room)
  } catch (err) {
    options.log.error({ err, room, conn: conn.id }, 'authorizeJoin failed')
    allowed = false
  }
  if (!allowed) conn.fail('FORBIDDEN', `room ${room} is not allowed`, ref)
  return allowed
}
