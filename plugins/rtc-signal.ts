import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { intOption, parseOptions, pathOption } from '../lib/options.js'
import { Admission } from '../lib/admission/admission.js'
import { ensureRooms } from './rooms.js'
import { admissionOptions, socketOptions } from './shared/options.js'
import { ensureWebsocket } from './shared/socket.js'
import { rtcRoutes } from '../routes/rtc.js'
import { iceServersRoute } from '../routes/rtc-ice.js'

const RtcOptions = z.strictObject({
  /** the signaling socket's upgrade route */
  path: pathOption.default('/rtc'),
  /** the ICE server list route; false: none */
  iceServersPath: z.union([pathOption, z.literal(false)]).default('/rtc/ice-servers'),
  ...admissionOptions,
  ...socketOptions,
  /** rtc peers a room may hold (a full mesh grows with the square of it) */
  roomCapacity: intOption(2, 10_000, 8),
  /** signals per second per connection, sustained */
  signalRatePerSec: z.number().positive().max(1_000_000).default(50),
  /** signals a connection may send in a burst (ICE gathering sends many at once); default max(100, 2 × rate) */
  signalBurst: z.number().int().min(1).max(1_000_000).optional(),
  /** largest `data` of one signal, in bytes of JSON */
  maxSignalBytes: intOption(256, 16 * 1024 * 1024, 32_768),
  /** how long a join waits for the peers on other instances to make themselves known (a bus between instances) */
  discoveryTimeoutMs: intOption(0, 60_000, 1000),
  /** STUN URLs served by the ICE route */
  stunUrls: z.array(z.string().regex(/^stuns?:\S+$/, { message: 'must start with stun: or stuns:' })).default([]),
  /** TURN URLs served by the ICE route, with time-limited credentials (needs turnSecret) */
  turnUrls: z.array(z.string().regex(/^turns?:\S+$/, { message: 'must start with turn: or turns:' })).default([]),
  /** the TURN server's shared secret (coturn: static-auth-secret with use-auth-secret) */
  turnSecret: z.string().min(1).optional(),
  /** lifetime of TURN credentials in seconds */
  turnTtlS: intOption(60, 7 * 24 * 3600, 3600)
}).refine((o) => o.turnUrls.length === 0 || o.turnSecret !== undefined, {
  message: 'is required with turnUrls: TURN entries carry time-limited credentials made with it',
  path: ['turnSecret']
})

/** The options of `rtcSignalGateway` (docs/rtc.md). */
export type RtcSignalGatewayOptions = z.input<typeof RtcOptions>

/**
 * The rtc-signal gateway (docs/rtc.md, docs/protocol.md): WebRTC signaling in rooms on `path`, and the ICE server
 * list. Peers are members of the shared `app.rooms`, so presence counts them and room events reach them; the socket
 * machinery (admission before the upgrade, ping, limits, 1001 on shutdown) is the ws gateway's, on the same upgrade
 * listener.
 */
async function rtcSignalGatewayPlugin (app: FastifyInstance, raw: RtcSignalGatewayOptions) {
  const options = parseOptions('fastify-gateways/rtc-signal', RtcOptions, raw)
  const registry = await ensureRooms(app)
  await ensureWebsocket(app, { maxPayload: options.maxPayload, closeTimeoutMs: options.closeTimeoutMs })
  if (options.turnSecret !== undefined && options.turnUrls.length === 0) {
    app.log.warn('rtc-signal: turnSecret is set but no turnUrls: the ICE route serves no TURN entry')
  }
  // one admission for the socket and the ICE route: the same origins, credential and join rule
  const admission = new Admission<FastifyRequest>(options)
  const { maxPayload, pingMs, maxRoomsPerConnection, ratePerSec, rateBurst, sendBufferBytes, bytesPerSec, bytesBurst, ipBytesPerSec, ipBytesBurst } = options
  await app.register(async function rtcScope (scope) {
    await scope.register(rtcRoutes, {
      path: options.path,
      registry,
      admission,
      limits: { maxPayload, pingMs, maxRoomsPerConnection, ratePerSec, rateBurst, sendBufferBytes, bytesPerSec, bytesBurst, ipBytesPerSec, ipBytesBurst },
      closeTimeoutMs: options.closeTimeoutMs,
      roomCapacity: options.roomCapacity,
      signalRatePerSec: options.signalRatePerSec,
      signalBurst: options.signalBurst ?? Math.max(100, Math.ceil(2 * options.signalRatePerSec)),
      maxSignalBytes: options.maxSignalBytes,
      discoveryTimeoutMs: options.discoveryTimeoutMs
    })
    if (options.iceServersPath !== false) {
      await scope.register(iceServersRoute, {
        path: options.iceServersPath,
        admission,
        ice: {
          stunUrls: options.stunUrls,
          turnUrls: options.turnUrls,
          ...(options.turnSecret === undefined ? {} : { turnSecret: options.turnSecret }),
          turnTtlS: options.turnTtlS
        }
      })
    }
  })
}

export const rtcSignalGateway = fp(rtcSignalGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/rtc-signal' })
export default rtcSignalGateway
