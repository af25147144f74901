// fastify-gateways browser client. Generated from lib/client/*.ts by `npm run build:client`: edit the sources,
// not this file. Specification: docs/protocol.md; usage: docs/client.md. MIT License.
/**
 * The codes a GatewayError may carry: those of the server's `error` frames and HTTP answers (docs/protocol.md), and
 * the client's own.
 */
export type GatewayErrorCode = "BAD_MESSAGE" | "UNAUTHENTICATED" | "FORBIDDEN" | "RATE_LIMITED" | "TOO_LARGE" | "NOT_FOUND" | "ROOM_FULL" | "UNAVAILABLE" | "DISCONNECTED" | "TIMEOUT" | "CLOSED" | "LEFT" | "QUEUE_FULL" | "NETWORK" | "TOKEN" | "BAD_RESPONSE" | "RTC" | (string & Record<never, never>);
export interface GatewayErrorDetails {
	status?: number;
	room?: string;
	ref?: string | number;
}
/**
 * An error of the gateway (`code` from the server's `error` frame or HTTP answer) or of the client itself:
 * `DISCONNECTED` (the socket closed before the answer), `TIMEOUT`, `CLOSED` (client closed), `LEFT` (room left
 * while its join was pending), `QUEUE_FULL`, `NETWORK`, `HTTP_<status>`, `TOKEN` (the token function threw).
 */
export declare class GatewayError extends Error {
	readonly name: "GatewayError";
	code: GatewayErrorCode;
	/** HTTP status (sse, ice servers) */
	status?: number;
	/** the room of a refused join */
	room?: string;
	/** the `ref` of the frame the server answered */
	ref?: string | number;
	constructor(code: GatewayErrorCode, message: string, details?: GatewayErrorDetails);
}
export interface BackoffOptions {
	/** delay ceiling of the first attempt; default 500 */
	baseMs?: number;
	/** largest delay; default 30000 */
	maxMs?: number;
	/** growth per attempt; default 2 */
	factor?: number;
	/** fraction of the ceiling that is randomised (0 to 1); default 0.5: delays lie in [ceiling / 2, ceiling] */
	jitter?: number;
	/** a random source in [0, 1), for tests */
	random?: () => number;
}
export type BackoffSettings = Required<Omit<BackoffOptions, "random">>;
/**
 * The delay before reconnect attempt `attempt` (0 for the first): the ceiling `min(maxMs, baseMs * factor^attempt)`
 * with the last `jitter` fraction of it randomised, so the delay lies in `[ceiling * (1 - jitter), ceiling]`.
 * Clients that lost the same server at the same moment spread out instead of coming back together.
 */
export declare function backoffDelay(attempt: number, options?: Omit<BackoffOptions, "random">, random?: () => number): number;
/** Attempt counter around `backoffDelay`; `reset()` after a good connection. */
export declare class Backoff {
	readonly options: BackoffSettings;
	readonly random: () => number;
	/** attempts counted since the last reset */
	attempt: number;
	constructor(options?: BackoffOptions);
	/** the delay before the next attempt; counts the attempt */
	next(): number;
	reset(): void;
}
/**
 * Resume bookkeeping per room: the last event id seen (what a rejoin sends as `since`) and a bounded window of the
 * ids already delivered, so an event replayed after a resume is dropped instead of delivered twice.
 *
 * Event ids are opaque strings (docs/protocol.md): they are compared for equality only, within one room, never
 * parsed or ordered. A room's resume point is the last id seen IN THAT ROOM; an id of another room means nothing to it.
 */
export declare class ResumeTracker {
	#private;
	/** how many recent ids per room are remembered for dedupe */
	readonly window: number;
	/** the id of the most recent event accepted in any room, or null (informational: never a resume point) */
	latest: string | null;
	constructor(options?: {
		window?: number;
	});
	/** Records event `id` of `room`; false when it was already delivered (drop it). An event without id is accepted. */
	accept(room: string, id: string | null | undefined): boolean;
	/** true when `id` of `room` was delivered (within the window) */
	seen(room: string, id: string): boolean;
	/** the last id seen in `room`, or null */
	lastId(room: string): string | null;
	/** The resume point of `room`: the last id seen in it, or null (nothing to resume from). */
	since(room: string): string | null;
	forget(room: string): void;
}
/** One event of a `text/event-stream`. */
export interface SseMessage {
	/** the last event id in effect (the stream's, not only this event's `id:` line), verbatim */
	id: string;
	/** `event:`, `message` when absent */
	event: string;
	data: string;
}
/**
 * Incremental `text/event-stream` parser (the WHATWG algorithm): `feed(text)` returns the events completed by that
 * chunk as `{ id, event, data }` (`id` is the last event id in effect, `event` defaults to `message`). `retry` holds
 * the last valid `retry:` value. Lines may end in LF, CR or CRLF, also across chunks; comments are skipped.
 */
export declare class SseParser {
	#private;
	/** the last `id:` value seen (an id with a NUL is ignored, as browsers do) */
	lastEventId: string;
	/** the last valid `retry:` value in ms */
	retry: number | undefined;
	feed(chunk: string): SseMessage[];
}
/** `url` (absolute, or relative to the page) as a ws:/wss: URL; http(s) is turned into ws(s). */
export declare function toSocketUrl(url: string | URL, base?: string | undefined): string;
/** `url` (absolute, or relative to the page) as an http:/https: URL; ws(s) is turned into http(s). */
export declare function toHttpUrl(url: string | URL, base?: string | undefined): string;
/** A token, or a function that returns a fresh one (called before every connection attempt). */
export type TokenOption = string | null | undefined | (() => string | null | undefined | Promise<string | null | undefined>);
/** What a room event comes with. */
export interface EventMeta {
	room: string;
	event: string;
	id: string;
}
export type EventHandler<T = unknown> = (data: T, meta: EventMeta) => void;
export interface GapInfo {
	room: string | null;
	/** the resume point that could not be served */
	since: string | null;
}
export type ClientStatus = "connecting" | "open" | "reconnecting" | "closed";
export interface StatusDetail {
	/** reconnecting: the attempt number and the wait before it */
	attempt?: number;
	delayMs?: number;
	/** close code and reason of the connection that ended */
	code?: number;
	reason?: string;
	/** open (ws): the connection id and user of `hello` */
	conn?: string | null;
	user?: string | null;
	/** closed (sse): why the stream stopped for good */
	error?: GatewayError | null;
}
/** The options every room client (ws and sse) takes for its callbacks. */
export interface RoomEventsOptions {
	onGap?: (gap: GapInfo) => void;
	onStatus?: (status: ClientStatus, detail: StatusDetail) => void;
	onError?: (error: GatewayError) => void;
}
declare class RoomEvents {
	#private;
	constructor(options: RoomEventsOptions);
	/**
	 * Calls `handler(data, { room, event, id })` for each room event named `event` (`'*'`: every event), only those
	 * of `options.room` when given. Returns a function that removes the handler.
	 */
	on<T = unknown>(event: string, handler: EventHandler<T>, options?: {
		room?: string;
	}): () => void;
	/** Removes `handler` from `event` (every registration of it). */
	off<T = unknown>(event: string, handler: EventHandler<T>): void;
	/** `fn({ room, since })` when a room's missed events could not all be recovered. */
	onGap(fn: (gap: GapInfo) => void): () => void;
	/** `fn(status, detail)` on every status change. */
	onStatus(fn: (status: ClientStatus, detail: StatusDetail) => void): () => void;
	/** `fn(error)` for errors of the connection: a refused auth, a refused join or rejoin, errors without ref, a failed stream. */
	onError(fn: (error: GatewayError) => void): () => void;
	/** the event names with handlers */
	get eventNames(): string[];
	protected emitGap(gap: GapInfo): void;
	protected emitStatus(status: ClientStatus, detail: StatusDetail): void;
	protected emitError(error: GatewayError): void;
	/** Hands a room event to the handlers of its name and to the catch-all ones. */
	protected dispatch(event: string, data: unknown, meta: EventMeta): void;
}
/** Options shared by the ws and sse clients. */
export interface CommonOptions extends RoomEventsOptions {
	/** a token, or a function returning a fresh one, called before every connection attempt */
	token?: TokenOption;
	backoff?: BackoffOptions;
	/** how many recent ids per room are remembered to drop duplicates; default 1024 */
	dedupeWindow?: number;
}
export interface ConnectOptions extends CommonOptions {
	/** how the token travels: an `auth` frame (default, keeps it out of URLs and logs) or `?token=` */
	auth?: "frame" | "query";
	/** reconnect after the connection drops; default true */
	reconnect?: boolean;
	/** give up after this many failed attempts in a row; default Infinity */
	maxRetries?: number;
	/** a publish (or leave, or ping) without answer rejects with TIMEOUT after this; default 10000; 0: never */
	ackTimeoutMs?: number;
	/** client ping interval; a ping unanswered for a whole interval drops the socket and reconnects; default 25000, 0: off */
	pingMs?: number;
	/** frames kept while offline; default 1000 */
	maxQueue?: number;
	/** how long close() waits for the closing handshake; default 3000 */
	closeTimeoutMs?: number;
	/** a WebSocket class (Node: `import { WebSocket } from 'ws'`); default globalThis.WebSocket */
	WebSocket?: unknown;
}
export interface RoomState {
	joined: boolean;
	/** the last event id seen in the room: what a rejoin sends as `since` */
	lastId: string | null;
	/** `recovered` of the last (re)join that sent `since`, else null */
	recovered: boolean | null;
}
/** The answer to `presence(room)`. */
export interface Presence {
	room: string;
	/** connections in the room, every transport and instance */
	members: number;
	/** distinct authenticated user ids among them (anonymous connections count in `members` only) */
	users: string[];
}
export interface JoinResult {
	room: string;
	/** only when `since` was sent: whether every missed event was replayed */
	recovered: boolean | null;
}
/** Opens a `/ws` connection; see GatewayClient. */
export declare function connect(url: string | URL, options?: ConnectOptions): GatewayClient;
/**
 * A `/ws` connection (docs/protocol.md): auth by `auth` frame (default) or `?token=`, joins with ack promises,
 * publish resolved by `ack` / rejected by `error` (same `ref`), automatic reconnect with jittered exponential
 * backoff that rejoins every room with `since: <the last id seen in that room>`, a `gap` callback when the server
 * reports `recovered: false`, and no event delivered twice.
 */
export declare class GatewayClient extends RoomEvents {
	#private;
	/** the server's connection id (`hello.conn`) */
	conn: string | null;
	/** the authenticated user id, null when anonymous, undefined before `hello` */
	user: string | null | undefined;
	constructor(url: string | URL, options?: ConnectOptions);
	/** 'connecting' | 'open' | 'reconnecting' | 'closed' */
	get status(): ClientStatus;
	/** the URL connected to (without token) */
	get url(): string;
	/** Rooms asked for: `room -> { joined, lastId, recovered }` (`recovered`: of the last (re)join that sent `since`). */
	get rooms(): Map<string, RoomState>;
	/** `recovered` of the last rejoin of `room` with `since`: true, false, or null (not resumed / unknown room). */
	recovered(room: string): boolean | null;
	/**
	 * Joins `room` now or as soon as the connection is up; the room is rejoined after every reconnect. Resolves
	 * `{ room, recovered }` at `joined`; rejects with the server's error (`FORBIDDEN`, ...). `since` resumes from an
	 * id of that room (one seen earlier, e.g. kept across page loads).
	 */
	join(room: string, options?: {
		since?: string;
	}): Promise<JoinResult>;
	/** Leaves `room` (it is no longer rejoined). Resolves at `left`, or at once when not connected. */
	leave(room: string): Promise<void>;
	/**
	 * Publishes `data` as `event` to `room` (allowed only where the server's CLIENT_PUBLISH_ROOMS permits). Resolves
	 * `{ id }` at the server's `ack`, rejects with its `error` (`FORBIDDEN`, `RATE_LIMITED`, ...), with `DISCONNECTED`
	 * when the socket closed before the answer (the event may or may not be published), or `TIMEOUT`. While offline
	 * the publish waits in a queue and is sent after the reconnect.
	 */
	publish(room: string, event: string, data?: unknown, options?: {
		timeoutMs?: number;
	}): Promise<{
		id: string;
	}>;
	/**
	 * Who is in `room` (a room this connection has joined): `{ room, members, users }`, `members` counting the
	 * connections of every transport (ws, sse, rtc) on every instance and `users` the distinct authenticated user
	 * ids among them. The `presence` op is an extension of the protocol (docs/protocol.md); a server without it
	 * answers `BAD_MESSAGE`.
	 */
	presence(room: string, options?: {
		timeoutMs?: number;
	}): Promise<Presence>;
	/**
	 * Sends a fresh token (from the `token` function) for the same user on the live connection, without reconnecting;
	 * resolves `{ exp }` (the new expiry in seconds since the epoch, null: none) at `refreshed`. The server asks for
	 * this by itself before a token expires (`refresh` op, docs/protocol.md), and the client answers when `token` is a
	 * function. Rooms the new token no longer allows are left by the server and reported to `onError` (`FORBIDDEN`).
	 * A refused token ends the connection (`UNAUTHENTICATED`, close 1008); the client then reconnects.
	 */
	refresh(options?: {
		timeoutMs?: number;
	}): Promise<{
		exp: number | null;
	}>;
	/** Round trip to the server; resolves with the time in ms. */
	ping(options?: {
		timeoutMs?: number;
	}): Promise<number>;
	/** Closes for good (no reconnect); pending promises reject with `CLOSED`. Resolves once the socket is closed. */
	close(): Promise<void>;
	/** Drops the current socket now and reconnects (e.g. after the page came back online, or with a new token). */
	reconnect(): void;
}
export interface SubscribeOptions extends CommonOptions {
	/**
	 * 'eventsource' (default): the browser's EventSource, which resumes by itself with Last-Event-ID; named events
	 * only (no `on('*')`), the token goes in `?token=`. 'fetch': a fetch stream reader; `on('*')` works and the token
	 * goes in an Authorization header.
	 */
	transport?: "eventsource" | "fetch";
	/** resume from this id (e.g. `lastEventId` of an earlier subscription of the same rooms) */
	lastEventId?: string;
	/** send cookies cross-origin */
	withCredentials?: boolean;
	/** start over after the stream was refused or ended; default true */
	reconnect?: boolean;
	/** an EventSource class; default globalThis.EventSource */
	EventSource?: unknown;
	fetch?: typeof fetch;
}
/** Subscribes to `rooms` over `/sse`; see SseSubscription. */
export declare function subscribe(url: string | URL, rooms: string | string[], options?: SubscribeOptions): SseSubscription;
/**
 * A `/sse` stream of one or more rooms (docs/protocol.md) with the same `on()`/`onGap()` API as the ws client.
 * Event ids are opaque: the id of the last event received resumes the whole stream (`Last-Event-ID`, sent back
 * verbatim), and events are deduplicated by id per room.
 */
export declare class SseSubscription extends RoomEvents {
	#private;
	constructor(url: string | URL, rooms: string | string[], options?: SubscribeOptions);
	get status(): ClientStatus;
	get rooms(): string[];
	/** the id of the last event received: pass it as `lastEventId` to a later subscription of the same rooms to resume */
	get lastEventId(): string | null;
	on<T = unknown>(event: string, handler: EventHandler<T>, options?: {
		room?: string;
	}): () => void;
	close(): void;
}
export interface IceServer {
	urls: string | string[];
	username?: string;
	credential?: string;
}
export interface RtcOptions {
	token?: TokenOption;
	/** how the token travels: an `auth` frame (default) or `?token=` */
	auth?: "frame" | "query";
	/** ICE servers; default: fetched from `<url>/ice-servers`, [] when unavailable */
	iceServers?: IceServer[];
	iceServersUrl?: string;
	/** a local stream sent to every peer */
	stream?: MediaStream;
	/** label of the data channel the newcomer opens to each peer; default 'data'; false: none */
	dataChannel?: string | false;
	channelOptions?: RTCDataChannelInit;
	/** a WebSocket class; default globalThis.WebSocket */
	WebSocket?: unknown;
	/** an RTCPeerConnection class; default globalThis.RTCPeerConnection */
	RTCPeerConnection?: unknown;
	fetch?: typeof fetch;
}
/** The events of an RtcSession, by name. */
export interface RtcEvents {
	joined: (info: {
		peer: string;
		peers: string[];
	}) => void;
	peer: (peer: RtcPeer) => void;
	"peer-left": (peer: RtcPeer) => void;
	channel: (channel: RTCDataChannel, peer: RtcPeer) => void;
	message: (data: unknown, peer: RtcPeer, channel: RTCDataChannel) => void;
	track: (track: MediaStreamTrack, streams: readonly MediaStream[], peer: RtcPeer) => void;
	state: (state: RTCPeerConnectionState, peer: RtcPeer) => void;
	event: (data: unknown, meta: EventMeta) => void;
	error: (error: GatewayError) => void;
	close: (info: {
		code: number;
		reason: string;
	}) => void;
}
/**
 * ICE servers from the rtc gateway (`GET /rtc/ice-servers`): a JSON list (or `{ iceServers: [...] }`); `[]` when
 * the route is missing or fails, which is enough on a LAN or loopback.
 */
export declare function fetchIceServers(url: string | URL, options?: {
	token?: string | null;
	fetch?: typeof fetch;
}): Promise<IceServer[]>;
/** Joins rtc `room` over the signaling socket at `url`; see RtcSession. */
export declare function joinRtc(url: string | URL, room: string, options?: RtcOptions): RtcSession;
/** One remote peer of an RtcSession. */
export declare class RtcPeer {
	#private;
	readonly id: string;
	readonly pc: RTCPeerConnection;
	/** the default data channel (label `dataChannel` of the session) once it exists */
	channel: RTCDataChannel | null;
	/** every data channel with this peer, by label */
	readonly channels: Map<string, RTCDataChannel>;
	/** remote streams seen on this peer */
	readonly streams: Set<MediaStream>;
	/** the polite side gives way when both offer at once ("perfect negotiation"); the newcomer is impolite */
	readonly polite: boolean;
	constructor(id: string, pc: RTCPeerConnection, polite: boolean);
	/** true once the connection with this peer was closed */
	get closed(): boolean;
	/** Sends on the default data channel; false when it is not open. */
	send(data: ChannelData): boolean;
	close(): void;
}
/** What a data channel sends: text or bytes. */
export type ChannelData = string | ArrayBuffer | Blob | ArrayBufferView;
/**
 * A member of an rtc room with a peer connection to every other member.
 *
 * - the newcomer makes the offers: on `joined` it creates a connection, its data channel and its tracks for each
 *   peer already there; the others answer (so the first negotiation never collides). Later negotiations (a stream
 *   added with `addStream`) use the "perfect negotiation" pattern, the newcomer being the impolite side.
 * - remote ICE candidates wait until the remote description is set.
 * - `peer-left` (or a failed connection) closes that peer's connection.
 *
 * Events (`on(name, fn)`): `joined({ peer, peers })`, `peer(peer)`, `peer-left(peer)`, `channel(channel, peer)` when
 * a data channel opens, `message(data, peer, channel)`, `track(track, streams, peer)`, `state(state, peer)`,
 * `event(data, { room, event, id })` for room events published to the rtc room, `error(err)`, `close({ code })`.
 */
export declare class RtcSession {
	#private;
	readonly room: string;
	/** my peer id in the room, once joined */
	peerId: string | null;
	/** the user id of the signaling connection (hello), null when anonymous, undefined before hello */
	user: string | null | undefined;
	/** remote peers by id */
	readonly peers: Map<string, RtcPeer>;
	/** resolves `{ peer, peers }` once joined; rejects with the server's error (ROOM_FULL, FORBIDDEN, ...) */
	readonly ready: Promise<{
		peer: string;
		peers: string[];
	}>;
	constructor(url: string | URL, room: string, options?: RtcOptions);
	/** `fn` for session events (see the class comment); returns a function that removes it */
	on<K extends keyof RtcEvents>(name: K, fn: RtcEvents[K]): () => void;
	/** Sends `data` on the default data channel of every peer whose channel is open; returns how many. */
	send(data: ChannelData): number;
	/** Adds a local stream's tracks to every peer (now and later ones); renegotiates the existing connections. */
	addStream(stream: MediaStream): void;
	/** Stops sending a local stream's tracks to every peer. */
	removeStream(stream: MediaStream): void;
	/** Leaves the room: closes every peer connection and the signaling socket. */
	close(): void;
	leave(): void;
}

export {};
