/**
 * fastify-gateways browser client: one dependency-free ES module, built from these sources into public/client.js
 * (served as `GET /client.js`, importable as `fastify-gateways/client`) with its types in public/client.d.ts.
 *
 *   import { connect, subscribe, joinRtc } from '/client.js'
 *
 *   const client = connect('/ws', { token: () => getFreshToken() })
 *   client.on('notification', (data, { room, id }) => { ... })
 *   await client.join('user:42')
 *   const { id } = await client.publish('public:chat', 'message', { text: 'hi' })
 *
 * - `connect()` speaks the `/ws` protocol: joins with ack promises, publish with ack, reconnect with jittered
 *   backoff that rejoins every room from the last id seen in it, gap callbacks, no event delivered twice.
 * - `subscribe()` reads `/sse` with the same `on()`/`onGap()` API, over `EventSource` or `fetch`.
 * - `joinRtc()` wraps the `/rtc` signaling protocol around `RTCPeerConnection`.
 *
 * The wire protocols are specified in docs/protocol.md, the client in docs/client.md. The pure parts (Backoff,
 * ResumeTracker, SseParser) are exported for tests and for other transports.
 */
export { GatewayError, type GatewayErrorCode, type GatewayErrorDetails } from './core/errors.js'
export { Backoff, backoffDelay, type BackoffOptions, type BackoffSettings } from './core/backoff.js'
export { ResumeTracker } from './core/resume.js'
export { SseParser, type SseMessage } from './core/sse-parser.js'
export { toSocketUrl, toHttpUrl, type TokenOption } from './core/urls.js'
export type {
  EventMeta, EventHandler, GapInfo, ClientStatus, StatusDetail, RoomEventsOptions, CommonOptions
} from './core/emitter.js'
export { connect, GatewayClient, type ConnectOptions, type RoomState, type JoinResult, type Presence } from './ws.js'
export { subscribe, SseSubscription, type SubscribeOptions } from './sse.js'
export {
  joinRtc, fetchIceServers, RtcSession, RtcPeer, type RtcOptions, type RtcEvents, type IceServer, type ChannelData
} from './rtc.js'
