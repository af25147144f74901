import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Admission } from '../lib/admission/admission.js'
import type { RoomRegistry } from '../lib/rooms/registry.js'
import { isPromise } from '../lib/rooms/types.js'
import { TokenBucket } from '../lib/limits/token-bucket.js'
import type { OpHandler, SocketConnection } from '../lib/ws/connection.js'
import { admitJoin } from '../lib/ws/join.js'
import { ServerFrames, type Ref } from '../lib/ws/protocol.js'
import { RtcRooms, type SignalOutcome } from '../lib/rtc/peers.js'
import { RtcFrames, RtcJoinFrame, RtcLeaveFrame, signalFrameSchema, type SignalFrame } from '../lib/rtc/signal.js'
import { socketRoute } from '../plugins/shared/socket.js'
import type { SocketLimits } from '../plugins/shared/options.js'

export interface RtcRoutesOptions {
  path: string
  registry: RoomRegistry
  admission: Admission<FastifyRequest>
  limits: SocketLimits
  closeTimeoutMs: number
  /** rtc peers per room */
  roomCapacity: number
  /** signals per second per connection, sustained, and in a burst */
  signalRatePerSec: number
  signalBurst: number
  /** largest `data` of a signal, in bytes of JSON */
  maxSignalBytes: number
  /** how long a join waits for the peers of other instances to answer */
  discoveryTimeoutMs: number
}

/**
 * `/rtc` (docs/protocol.md): join (with the peer id and the other peers), leave, signal. The upgrade's admission,
 * auth, ping, ordering and limits are the socket machinery's (plugins/shared/socket.ts); who is in which room and the
 * relay of signals, across instances too, is lib/rtc/peers.ts.
 */
export async function rtcRoutes (scope: FastifyInstance, options: RtcRoutesOptions) {
  const { registry, admission, limits } = options
  const peers = new RtcRooms({
    registry,
    capacity: options.roomCapacity,
    discoveryTimeoutMs: options.discoveryTimeoutMs,
    log: scope.log
  })
  scope.addHook('onClose', async () => { peers.close() })
  const signalBuckets = new WeakMap<SocketConnection, TokenBucket>()

  const join: OpHandler<RtcJoinFrame> = {
    schema: RtcJoinFrame,
    async handle ({ room }, conn, ref) {
      if (peers.has(conn.id, room)) {
        // joining twice changes nothing (as on /ws): the current peers again
        conn.send(RtcFrames.joined(room, conn.id, peers.peersOf(room, conn.id), ref))
        return
      }
      if (!await admitJoin(conn, room, ref, { admission, maxRooms: limits.maxRoomsPerConnection, log: scope.log })) return
      const entered = await peers.enter(conn, room)
      if (!entered.ok) {
        if (entered.code !== 'GONE') conn.fail(entered.code, entered.message, ref)
        return
      }
      await conn.joinRoom(room, {
        announce: () => {
          conn.send(RtcFrames.joined(room, conn.id, entered.peers, ref))
          peers.activate(conn.id, room)
        }
      })
    }
  }

  const leave: OpHandler<RtcLeaveFrame> = {
    schema: RtcLeaveFrame,
    handle ({ room }, conn, ref) {
      if (!peers.has(conn.id, room)) {
        conn.fail('NOT_FOUND', `not a member of room ${room}`, ref)
        return
      }
      conn.leaveRoom(room)
      peers.leave(conn.id, room)
      conn.send(ServerFrames.left(room, ref))
    }
  }

  const signal: OpHandler<SignalFrame> = {
    schema: signalFrameSchema(options.maxSignalBytes),
    handle ({ room, to, data }, conn, ref) {
      let bucket = signalBuckets.get(conn)
      if (bucket === undefined) {
        bucket = new TokenBucket(options.signalRatePerSec, options.signalBurst)
        signalBuckets.set(conn, bucket)
      }
      if (!bucket.take()) {
        conn.fail('RATE_LIMITED', `at most ${options.signalRatePerSec} signals per second`, ref)
        return
      }
      const outcome = peers.signal(conn.id, room, to, data)
      // not awaited: a relay to another instance must not hold this connection's next signals (the bus keeps order)
      if (isPromise(outcome)) void outcome.then((result) => { report(conn, result, room, to, ref) })
      else report(conn, outcome, room, to, ref)
    }
  }

  socketRoute(scope, {
    path: options.path,
    transport: 'rtc',
    registry,
    admission,
    limits,
    closeTimeoutMs: options.closeTimeoutMs,
    ops: { join, leave, signal },
    // the connection has left its rooms (leave, close, a dead peer found by the ping, 1013): tell the others
    onEnd: (conn) => { peers.leaveAll(conn.id) },
    // a room a refreshed token no longer allows is left like a `leave`
    onRevoked: (conn, room) => { peers.leave(conn.id, room) }
  })
}

function report (conn: SocketConnection, outcome: SignalOutcome, room: string, to: string, ref: Ref | undefined): void {
  if (outcome === 'not-member') conn.fail('NOT_FOUND', `join room ${room} before signaling in it`, ref)
  else if (outcome === 'not-found') conn.fail('NOT_FOUND', `no peer ${JSON.stringify(to)} in room ${room}`, ref)
}
