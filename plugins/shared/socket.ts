import type { ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import type {} from '@fastify/websocket'
import type { WebSocket, WebSocketServer } from 'ws'
import { AuthError } from '../../lib/auth/jwt.js'
import type { GatewayUser } from '../../lib/auth/user.js'
import type { Admission } from '../../lib/admission/admission.js'
import type { RoomRegistry } from '../../lib/rooms/registry.js'
import { UpgradeGuard, startClosing } from '../../lib/ws/shutdown.js'
import { ConnectionContext, SocketConnection, type OpHandler } from '../../lib/ws/connection.js'
import { AddressRates } from '../../lib/ws/rates.js'
import { addressOf, admitRequest, type Transport } from './admission.js'
import type { SocketLimits } from './options.js'

/**
 * The Fastify side of a socket gateway (ws, rtc), shared so each gateway only writes its ops.
 *
 *   await ensureWebsocket(app, { maxPayload, closeTimeoutMs })          // in the plugin's outer (fp) function
 *   await app.register(async (scope) => {
 *     socketRoute(scope, { path: '/rtc', transport: 'rtc', registry, admission, ops: { join, leave, signal }, ... })
 *   })
 *
 * `socketRoute` adds one WebSocket route whose `onRequest` hook runs the admission check (lib/admission: Origin 403,
 * per-address limit 429, credential 401) before the upgrade; each accepted socket becomes a `SocketConnection`
 * (lib/ws/connection.ts) that sends `hello`, handles `auth` and `ping` itself and hands every other op to `ops`. It
 * pings every `pingMs` (an unanswered ping ends the connection) and, on close, closes its sockets with 1001 and waits
 * for them (at most `closeTimeoutMs`) in `preClose`.
 */

export interface SocketRouteOptions {
  /** the route of the upgrade, e.g. '/ws' */
  path: string
  /** member transport name, and which error codes refusals carry */
  transport: Transport
  registry: RoomRegistry
  /** who may connect (Origin, per-address limit, credential before the upgrade and in `auth` frames) */
  admission: Admission<FastifyRequest>
  limits: SocketLimits
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
  /** a room left because a refreshed token no longer allows it (the join rule is asked again on `refresh`) */
  onRevoked?: (conn: SocketConnection, room: string) => void
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
  const log = app.log
  await app.register(websocket, {
    // closeTimeout (ws 8.18+) is missing from @types/ws
    options: { maxPayload: options.maxPayload, perMessageDeflate: false, ...{ closeTimeout: options.closeTimeoutMs } as object },
    errorHandler (error, socket, request) {
      // errors before our route's handler took the socket over (see releaseUpgrade) and thrown handler errors
      clientError(request.log, socket, error)
    },
    preClose: async function closeGoingAway (this: FastifyInstance) {
      const wss = this.websocketServer
      // every socket is told now; the wait is in onClose, so other gateways' shutdown (SSE) does not queue behind it
      closed = startClosing([...wss.clients], 1001, 'server shutting down', options.closeTimeoutMs)
      wss.close()
    }
  })
  // the same handling as errorHandler's, without the request and reply @fastify/websocket's listener keeps
  ownedServers.set(app.websocketServer, function onClientError (this: WebSocket, error: Error) { clientError(log, this, error) })
  app.addHook('onClose', async () => { await closed })
  // Registered after @fastify/websocket's own listener, so the socket already carries its response.
  app.server.on('upgrade', guard.listener)
  app.addHook('onClose', async () => { app.server.off('upgrade', guard.listener) })
}

/** Protocol errors of a client (bad frame, oversize frame): ws has already started closing with the right code. */
function clientError (log: FastifyInstance['log'], socket: WebSocket, error: Error): void {
  log.info({ reason: error.message, code: (error as { code?: string }).code }, 'websocket client error')
  if (socket.readyState === 1) socket.terminate()
}

/** The @fastify/websocket servers `ensureWebsocket` registered, with the error listener that replaces the plugin's. */
const ownedServers = new WeakMap<WebSocketServer, (this: WebSocket, error: Error) => void>()

/**
 * What @fastify/websocket keeps per upgraded socket, let go once our handler has the socket (docs/ws.md,
 * "Performance"). The plugin routes each upgrade through a `ServerResponse` it assigns to the TCP socket, and
 * attaches an `error` listener whose closure holds Fastify's request and reply: together about 2.7 KB per connection
 * (request, reply, IncomingMessage with its headers, ServerResponse) for the connection's whole life. Here the response
 * is detached from the socket and the listener replaced by `onError`, which does what our `errorHandler` does.
 * Only for a plugin registered by `ensureWebsocket` (a host's own registration keeps its errorHandler and its memory).
 */
function releaseUpgrade (socket: WebSocket, onError: (this: WebSocket, error: Error) => void): void {
  const raw = (socket as unknown as { _socket?: { _httpMessage?: ServerResponse | null } })._socket
  const response = raw?._httpMessage
  if (raw !== undefined && response !== undefined && response !== null) response.detachSocket(raw as ServerResponse['socket'] & object)
  socket.removeAllListeners('error')
  socket.on('error', onError)
}

/** The connection of a socket, for the listeners every socket of the route shares. */
const CONNECTION = Symbol('connection')
type Tagged = WebSocket & { [CONNECTION]: SocketConnection }

function onMessage (this: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
  (this as Tagged)[CONNECTION].receive(data, isBinary)
}

function onPong (this: WebSocket): void {
  (this as Tagged)[CONNECTION].alive = true
}

function onSocketError (this: WebSocket, error: Error): void {
  (this as Tagged)[CONNECTION].socketError(error)
}

/** Adds the gateway's WebSocket route to `scope` (an encapsulated scope of the gateway plugin). */
export function socketRoute (scope: FastifyInstance, options: SocketRouteOptions): SocketRoute {
  const { registry, admission, limits, transport } = options
  // inbound bytes per second per client address, shared by its connections to this route (lib/ws/rates.ts)
  const rates = new AddressRates(limits.ipBytesPerSec, Math.max(limits.ipBytesBurst, limits.maxPayload))
  const users = new WeakMap<FastifyRequest, GatewayUser | null>()
  const connections = new Set<SocketConnection>()
  // what every connection of the route shares, built once (a connection holds only its own state)
  const context = new ConnectionContext({
    transport,
    registry,
    limits,
    ops: options.ops,
    ...(admission.authenticates ? { authenticate: (token: string, request: unknown) => authenticateFrame(admission, token, request as FastifyRequest) } : {}),
    ...(options.onDirect === undefined ? {} : { onDirect: options.onDirect }),
    ...(options.onEnd === undefined ? {} : { onEnd: options.onEnd }),
    // a refreshed token is held to the join rule again (docs/protocol.md, "Extensions")
    authorizeJoin: async (user, room) => (await admission.join(user, room)) === null,
    ...(options.onRevoked === undefined ? {} : { onRevoked: options.onRevoked }),
    rates,
    log: scope.log
  })
  const onClose = function (this: WebSocket): void {
    const conn = (this as Tagged)[CONNECTION]
    connections.delete(conn)
    admission.release(conn.address)
    conn.end()
  }
  let onError: ((this: WebSocket, error: Error) => void) | undefined

  scope.get(options.path, {
    websocket: true,
    onRequest: async (request, reply) => { users.set(request, await admitRequest(admission, transport, request, reply)) }
  }, (socket, request) => {
    onError ??= ownedServers.get(scope.websocketServer)
    if (onError !== undefined) releaseUpgrade(socket, onError)
    const address = addressOf(request)
    const user = users.get(request) ?? null
    users.delete(request)
    if (!admission.acquire(address)) {
      // a race with other upgrades from the same address since the hook counted
      socket.close(1013, 'too many connections')
      return
    }
    const conn = new SocketConnection(socket, context, { id: registry.nextMemberId(), user, address, request })
    ;(socket as Tagged)[CONNECTION] = conn
    connections.add(conn)
    socket.on('message', onMessage)
    socket.on('pong', onPong)
    socket.on('error', onSocketError)
    socket.on('close', onClose)
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

/** The token of an `auth` frame, checked like the upgrade's: the same refusal reasons, never a host error's text. */
async function authenticateFrame (admission: Admission<FastifyRequest>, token: string, request: FastifyRequest): Promise<GatewayUser | null> {
  const result = await admission.identify(token, request)
  if (result.ok) return result.user
  throw new AuthError(result.refusal.kind === 'unauthenticated' ? result.refusal.reason : 'invalid token')
}
