/**
 * Types of the fastify-gateways browser client (`public/client.js`, served as `GET /client.js`, importable as
 * `fastify-gateways/client`).
 */

/** A token, or a function that returns a fresh one (called before every connection attempt). */
export type TokenOption = string | null | undefined | (() => string | null | undefined | Promise<string | null | undefined>)

export interface BackoffOptions {
  /** delay ceiling of the first attempt; default 500 */
  baseMs?: number
  /** largest delay; default 30000 */
  maxMs?: number
  /** growth per attempt; default 2 */
  factor?: number
  /** fraction of the ceiling that is randomised (0 to 1); default 0.5: delays lie in [ceiling / 2, ceiling] */
  jitter?: number
  /** a random source in [0, 1), for tests */
  random?: () => number
}

export declare function backoffDelay (attempt: number, options?: Omit<BackoffOptions, 'random'>, random?: () => number): number

export declare class Backoff {
  constructor (options?: BackoffOptions)
  readonly options: Required<Omit<BackoffOptions, 'random'>>
  /** attempts counted since the last reset */
  attempt: number
  /** the delay before the next attempt (counts it) */
  next (): number
  reset (): void
}

/** Last seen id per room and dedupe of ids already delivered. */
export declare class ResumeTracker {
  constructor (options?: { window?: number })
  readonly window: number
  /** the most recent id accepted in any room */
  latest: string | null
  /** records an event; false when its id was already delivered in that room */
  accept (room: string, id: string | undefined | null): boolean
  seen (room: string, id: string): boolean
  lastId (room: string): string | null
  /** the resume point of a room: its last id, else the latest id of any room, else null */
  since (room: string): string | null
  forget (room: string): void
}

export interface SseMessage {
  id: string
  event: string
  data: string
}

/** Incremental text/event-stream parser. */
export declare class SseParser {
  lastEventId: string
  retry: number | undefined
  feed (chunk: string): SseMessage[]
}

export type GatewayErrorCode =
  | 'BAD_MESSAGE' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED' | 'TOO_LARGE' | 'NOT_FOUND' | 'ROOM_FULL'
  | 'UNAVAILABLE' | 'DISCONNECTED' | 'TIMEOUT' | 'CLOSED' | 'LEFT' | 'QUEUE_FULL' | 'NETWORK' | 'TOKEN'
  | 'BAD_RESPONSE' | 'RTC' | (string & {})

export declare class GatewayError extends Error {
  constructor (code: GatewayErrorCode, message: string, details?: { status?: number, room?: string, ref?: string | number })
  readonly name: 'GatewayError'
  code: GatewayErrorCode
  /** HTTP status (sse, ice servers) */
  status?: number
  room?: string
  ref?: string | number
}

export declare function toSocketUrl (url: string | URL, base?: string): string
export declare function toHttpUrl (url: string | URL, base?: string): string

export interface EventMeta {
  room: string
  event: string
  id: string
}

export type EventHandler<T = unknown> = (data: T, meta: EventMeta) => void

export interface GapInfo {
  room: string | null
  /** the resume point that could not be served */
  since: string | null
}

export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StatusDetail {
  /** reconnecting: the attempt number and the wait before it */
  attempt?: number
  delayMs?: number
  /** close code and reason of the connection that ended */
  code?: number
  reason?: string
  /** open (ws): the connection id and user of `hello` */
  conn?: string | null
  user?: string | null
  /** closed (sse): why the stream stopped for good */
  error?: GatewayError | null
}

interface RoomEventsApi {
  /** `handler(data, { room, event, id })` for events named `event` (`'*'`: all), of `options.room` only when given */
  on<T = unknown> (event: string, handler: EventHandler<T>, options?: { room?: string }): () => void
  off (event: string, handler: EventHandler<any>): void
  onGap (fn: (gap: GapInfo) => void): () => void
  onStatus (fn: (status: ClientStatus, detail: StatusDetail) => void): () => void
  onError (fn: (error: GatewayError) => void): () => void
  readonly eventNames: string[]
}

interface CommonOptions {
  token?: TokenOption
  onGap?: (gap: GapInfo) => void
  onStatus?: (status: ClientStatus, detail: StatusDetail) => void
  onError?: (error: GatewayError) => void
  backoff?: BackoffOptions
  /** how many recent ids per room are remembered to drop duplicates; default 1024 */
  dedupeWindow?: number
}

export interface ConnectOptions extends CommonOptions {
  /** how the token travels: an `auth` frame (default, keeps it out of URLs and logs) or `?token=` */
  auth?: 'frame' | 'query'
  /** reconnect after the connection drops; default true */
  reconnect?: boolean
  /** give up after this many failed attempts in a row; default Infinity */
  maxRetries?: number
  /** a publish (or leave, or ping) without answer rejects with TIMEOUT after this; default 10000; 0: never */
  ackTimeoutMs?: number
  /** client ping interval; a ping unanswered for a whole interval drops the socket and reconnects; default 25000, 0: off */
  pingMs?: number
  /** frames kept while offline; default 1000 */
  maxQueue?: number
  /** how long close() waits for the closing handshake; default 3000 */
  closeTimeoutMs?: number
  /** a WebSocket class (Node: `import { WebSocket } from 'ws'`); default globalThis.WebSocket */
  WebSocket?: unknown
}

export interface RoomState {
  joined: boolean
  lastId: string | null
  recovered: boolean | null
}

export interface JoinResult {
  room: string
  /** only when `since` was sent: whether every missed event was replayed */
  recovered: boolean | null
}

export declare class GatewayClient implements RoomEventsApi {
  constructor (url: string | URL, options?: ConnectOptions)
  readonly status: ClientStatus
  readonly url: string
  /** `hello.conn` */
  conn: string | null
  /** `hello.user`: the user id, null when anonymous, undefined before hello */
  user: string | null | undefined
  readonly rooms: Map<string, RoomState>
  recovered (room: string): boolean | null
  join (room: string, options?: { since?: string }): Promise<JoinResult>
  leave (room: string): Promise<void>
  publish (room: string, event: string, data?: unknown, options?: { timeoutMs?: number }): Promise<{ id: string }>
  ping (options?: { timeoutMs?: number }): Promise<number>
  reconnect (): void
  close (): Promise<void>
  on<T = unknown> (event: string, handler: EventHandler<T>, options?: { room?: string }): () => void
  off (event: string, handler: EventHandler<any>): void
  onGap (fn: (gap: GapInfo) => void): () => void
  onStatus (fn: (status: ClientStatus, detail: StatusDetail) => void): () => void
  onError (fn: (error: GatewayError) => void): () => void
  readonly eventNames: string[]
}

export declare function connect (url: string | URL, options?: ConnectOptions): GatewayClient

export interface SubscribeOptions extends CommonOptions {
  /**
   * 'eventsource' (default): the browser's EventSource, which resumes by itself with Last-Event-ID; named events
   * only (no `on('*')`), the token goes in `?token=`. 'fetch': a fetch stream reader; `on('*')` works and the token
   * goes in an Authorization header.
   */
  transport?: 'eventsource' | 'fetch'
  /** resume from this id (e.g. `lastEventId` of an earlier subscription) */
  lastEventId?: string
  /** send cookies cross-origin */
  withCredentials?: boolean
  /** start over after the stream was refused or ended; default true */
  reconnect?: boolean
  EventSource?: unknown
  fetch?: typeof fetch
}

export declare class SseSubscription implements RoomEventsApi {
  constructor (url: string | URL, rooms: string | string[], options?: SubscribeOptions)
  readonly status: ClientStatus
  readonly rooms: string[]
  readonly lastEventId: string | null
  close (): void
  on<T = unknown> (event: string, handler: EventHandler<T>, options?: { room?: string }): () => void
  off (event: string, handler: EventHandler<any>): void
  onGap (fn: (gap: GapInfo) => void): () => void
  onStatus (fn: (status: ClientStatus, detail: StatusDetail) => void): () => void
  onError (fn: (error: GatewayError) => void): () => void
  readonly eventNames: string[]
}

export declare function subscribe (url: string | URL, rooms: string | string[], options?: SubscribeOptions): SseSubscription

export interface IceServer {
  urls: string | string[]
  username?: string
  credential?: string
}

export declare function fetchIceServers (url: string | URL, options?: { token?: string | null, fetch?: typeof fetch }): Promise<IceServer[]>

export interface RtcOptions {
  token?: TokenOption
  auth?: 'frame' | 'query'
  /** ICE servers; default: fetched from `<url>/ice-servers`, [] when unavailable */
  iceServers?: IceServer[]
  iceServersUrl?: string
  /** a local stream sent to every peer */
  stream?: MediaStream
  /** label of the data channel the newcomer opens to each peer; default 'data'; false: none */
  dataChannel?: string | false
  channelOptions?: RTCDataChannelInit
  WebSocket?: unknown
  RTCPeerConnection?: unknown
  fetch?: typeof fetch
}

export declare class RtcPeer {
  readonly id: string
  readonly pc: RTCPeerConnection
  /** the default data channel, once it exists */
  channel: RTCDataChannel | null
  channels: Map<string, RTCDataChannel>
  streams: Set<MediaStream>
  readonly polite: boolean
  send (data: string | ArrayBuffer | Blob | ArrayBufferView): boolean
  close (): void
}

export interface RtcEvents {
  joined: (info: { peer: string, peers: string[] }) => void
  peer: (peer: RtcPeer) => void
  'peer-left': (peer: RtcPeer) => void
  channel: (channel: RTCDataChannel, peer: RtcPeer) => void
  message: (data: any, peer: RtcPeer, channel: RTCDataChannel) => void
  track: (track: MediaStreamTrack, streams: readonly MediaStream[], peer: RtcPeer) => void
  state: (state: RTCPeerConnectionState, peer: RtcPeer) => void
  event: (data: unknown, meta: EventMeta) => void
  error: (error: GatewayError) => void
  close: (info: { code: number, reason: string }) => void
}

export declare class RtcSession {
  constructor (url: string | URL, room: string, options?: RtcOptions)
  readonly room: string
  peerId: string | null
  user: string | null | undefined
  readonly peers: Map<string, RtcPeer>
  /** resolves once joined; rejects with ROOM_FULL, FORBIDDEN, ... */
  readonly ready: Promise<{ peer: string, peers: string[] }>
  on<K extends keyof RtcEvents> (name: K, fn: RtcEvents[K]): () => void
  send (data: string | ArrayBuffer | Blob | ArrayBufferView): number
  addStream (stream: MediaStream): void
  removeStream (stream: MediaStream): void
  close (): void
  leave (): void
}

export declare function joinRtc (url: string | URL, room: string, options?: RtcOptions): RtcSession
