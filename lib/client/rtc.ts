import { Emitter, type EventMeta } from './core/emitter.js'
import { GatewayError, isRecord, messageOf } from './core/errors.js'
import { OPEN, readFrame, refOf, socketClass, stringField, type SocketConstructor, type SocketLike } from './core/socket.js'
import { resolveToken, toHttpUrl, toSocketUrl, withParams, type TokenOption } from './core/urls.js'

export interface IceServer {
  urls: string | string[]
  username?: string
  credential?: string
}

export interface RtcOptions {
  token?: TokenOption
  /** how the token travels: an `auth` frame (default) or `?token=` */
  auth?: 'frame' | 'query'
  /** ICE servers; default: fetched from `<url>/ice-servers`, [] when unavailable */
  iceServers?: IceServer[]
  iceServersUrl?: string
  /** a local stream sent to every peer */
  stream?: MediaStream
  /** label of the data channel the newcomer opens to each peer; default 'data'; false: none */
  dataChannel?: string | false
  channelOptions?: RTCDataChannelInit
  /** a WebSocket class; default globalThis.WebSocket */
  WebSocket?: unknown
  /** an RTCPeerConnection class; default globalThis.RTCPeerConnection */
  RTCPeerConnection?: unknown
  fetch?: typeof fetch
}

/** The events of an RtcSession, by name. */
export interface RtcEvents {
  joined: (info: { peer: string, peers: string[] }) => void
  peer: (peer: RtcPeer) => void
  'peer-left': (peer: RtcPeer) => void
  channel: (channel: RTCDataChannel, peer: RtcPeer) => void
  message: (data: unknown, peer: RtcPeer, channel: RTCDataChannel) => void
  track: (track: MediaStreamTrack, streams: readonly MediaStream[], peer: RtcPeer) => void
  state: (state: RTCPeerConnectionState, peer: RtcPeer) => void
  event: (data: unknown, meta: EventMeta) => void
  error: (error: GatewayError) => void
  close: (info: { code: number, reason: string }) => void
}

type PeerConnectionConstructor = new (config: RTCConfiguration) => RTCPeerConnection

/**
 * ICE servers from the rtc gateway (`GET /rtc/ice-servers`): a JSON list (or `{ iceServers: [...] }`); `[]` when
 * the route is missing or fails, which is enough on a LAN or loopback.
 */
export async function fetchIceServers (url: string | URL, options: { token?: string | null, fetch?: typeof fetch } = {}): Promise<IceServer[]> {
  const fetchImpl = options.fetch ?? globalThis.fetch
  try {
    const headers: Record<string, string> = typeof options.token === 'string' && options.token !== '' ? { authorization: `Bearer ${options.token}` } : {}
    const response = await fetchImpl(toHttpUrl(url), { headers })
    if (!response.ok) return []
    const body: unknown = await response.json()
    const list: unknown[] = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.iceServers) ? body.iceServers : []
    return list.filter((server): server is IceServer => isRecord(server) &&
      (typeof server.urls === 'string' || Array.isArray(server.urls)))
  } catch {
    return []
  }
}

/** Joins rtc `room` over the signaling socket at `url`; see RtcSession. */
export function joinRtc (url: string | URL, room: string, options: RtcOptions = {}): RtcSession {
  return new RtcSession(url, room, options)
}

/** One remote peer of an RtcSession. */
export class RtcPeer {
  readonly id: string
  readonly pc: RTCPeerConnection
  /** the default data channel (label `dataChannel` of the session) once it exists */
  channel: RTCDataChannel | null = null
  /** every data channel with this peer, by label */
  readonly channels = new Map<string, RTCDataChannel>()
  /** remote streams seen on this peer */
  readonly streams = new Set<MediaStream>()
  /** the polite side gives way when both offer at once ("perfect negotiation"); the newcomer is impolite */
  readonly polite: boolean
  #closed = false

  constructor (id: string, pc: RTCPeerConnection, polite: boolean) {
    this.id = id
    this.pc = pc
    this.polite = polite
  }

  /** true once the connection with this peer was closed */
  get closed (): boolean {
    return this.#closed
  }

  /** Sends on the default data channel; false when it is not open. */
  send (data: ChannelData): boolean {
    if (this.channel === null || this.channel.readyState !== 'open') return false
    sendOn(this.channel, data)
    return true
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    for (const channel of this.channels.values()) {
      try {
        channel.close()
      } catch {}
    }
    this.pc.close()
  }
}

/** What a data channel sends: text or bytes. */
export type ChannelData = string | ArrayBuffer | Blob | ArrayBufferView

/** RTCDataChannel.send declares one overload per type of ChannelData; each of them is valid at run time. */
function sendOn (channel: RTCDataChannel, data: ChannelData): void {
  (channel.send as (data: ChannelData) => void).call(channel, data)
}

/** Negotiation state of one peer connection (perfect negotiation, queued candidates). */
interface Negotiation {
  makingOffer: boolean
  ignoreOffer: boolean
  tracksAdded: boolean
  candidates: RTCIceCandidateInit[]
}

interface Deferred<T> {
  resolve: (value: T) => void
  reject: (err: GatewayError) => void
}

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
export class RtcSession {
  readonly #url: string
  readonly #options: RtcOptions
  readonly #dataChannel: string | false
  readonly #PeerConnection: PeerConnectionConstructor
  readonly #WebSocket: SocketConstructor
  readonly #events = new Emitter<RtcEvents>()
  readonly #negotiation = new WeakMap<RtcPeer, Negotiation>()
  readonly #streams: MediaStream[] = []
  readonly #joinRef = 'j1'
  readonly #ready: Deferred<{ peer: string, peers: string[] }>
  #socket: SocketLike | null = null
  #iceServers: IceServer[] = []
  #chain: Promise<void> = Promise.resolve()
  #closed = false
  readonly room: string
  /** my peer id in the room, once joined */
  peerId: string | null = null
  /** the user id of the signaling connection (hello), null when anonymous, undefined before hello */
  user: string | null | undefined = undefined
  /** remote peers by id */
  readonly peers = new Map<string, RtcPeer>()
  /** resolves `{ peer, peers }` once joined; rejects with the server's error (ROOM_FULL, FORBIDDEN, ...) */
  readonly ready: Promise<{ peer: string, peers: string[] }>

  constructor (url: string | URL, room: string, options: RtcOptions = {}) {
    this.room = room
    this.#url = toSocketUrl(url)
    this.#options = options
    this.#dataChannel = options.dataChannel ?? 'data'
    const PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection
    if (typeof PeerConnection !== 'function') throw new TypeError('no RTCPeerConnection implementation')
    this.#PeerConnection = PeerConnection as PeerConnectionConstructor
    this.#WebSocket = socketClass(options.WebSocket)
    if (options.stream) this.#streams.push(options.stream)
    let deferred: Deferred<{ peer: string, peers: string[] }> | undefined
    this.ready = new Promise((resolve, reject) => { deferred = { resolve, reject } })
    this.#ready = deferred as Deferred<{ peer: string, peers: string[] }>
    this.ready.catch(() => {})
    void this.#start()
  }

  /** `fn` for session events (see the class comment); returns a function that removes it */
  on<K extends keyof RtcEvents> (name: K, fn: RtcEvents[K]): () => void {
    if (typeof fn !== 'function') throw new TypeError('on(name, fn): fn must be a function')
    return this.#events.on(name, fn)
  }

  /** Sends `data` on the default data channel of every peer whose channel is open; returns how many. */
  send (data: ChannelData): number {
    let count = 0
    for (const peer of this.peers.values()) if (peer.send(data)) count++
    return count
  }

  /** Adds a local stream's tracks to every peer (now and later ones); renegotiates the existing connections. */
  addStream (stream: MediaStream): void {
    if (this.#streams.includes(stream)) return
    this.#streams.push(stream)
    for (const peer of this.peers.values()) {
      if (!this.#state(peer).tracksAdded) continue
      for (const track of stream.getTracks()) peer.pc.addTrack(track, stream)
    }
  }

  /** Stops sending a local stream's tracks to every peer. */
  removeStream (stream: MediaStream): void {
    const index = this.#streams.indexOf(stream)
    if (index === -1) return
    this.#streams.splice(index, 1)
    const tracks = new Set<MediaStreamTrack | null>(stream.getTracks())
    for (const peer of this.peers.values()) {
      for (const sender of peer.pc.getSenders()) if (tracks.has(sender.track)) peer.pc.removeTrack(sender)
    }
  }

  /** Leaves the room: closes every peer connection and the signaling socket. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    for (const peer of [...this.peers.values()]) this.#removePeer(peer, false)
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) {
      socket.send(JSON.stringify({ op: 'leave', room: this.room }))
      socket.close(1000, 'left')
    } else if (socket !== null) {
      try {
        socket.close()
      } catch {}
    }
    this.#ready.reject(new GatewayError('CLOSED', 'the rtc session was closed'))
  }

  leave (): void {
    this.close()
  }

  async #start (): Promise<void> {
    let token: string | null
    try {
      token = await resolveToken(this.#options.token)
    } catch (err) {
      this.#fail(new GatewayError('TOKEN', `the token function failed: ${messageOf(err)}`))
      return
    }
    const iceServers = this.#options.iceServers !== undefined
      ? Promise.resolve(this.#options.iceServers)
      : fetchIceServers(this.#options.iceServersUrl ?? `${toHttpUrl(this.#url).replace(/[?#].*$/, '').replace(/\/$/, '')}/ice-servers`,
        { token, ...(this.#options.fetch === undefined ? {} : { fetch: this.#options.fetch }) })
    if (this.#closed) return
    const auth = this.#options.auth ?? 'frame'
    const url = token !== null && auth === 'query' ? withParams(this.#url, [['token', token]]) : this.#url
    const socket = new this.#WebSocket(url)
    this.#socket = socket
    socket.onopen = () => {
      if (token !== null && auth === 'frame') socket.send(JSON.stringify({ op: 'auth', token, ref: 'auth' }))
      socket.send(JSON.stringify({ op: 'join', room: this.room, ref: this.#joinRef }))
    }
    socket.onmessage = (e) => {
      const frame = readFrame(e.data)
      if (frame === null) return
      // one frame after the other: a signal never overtakes the description before it
      this.#chain = this.#chain.then(() => this.#handle(frame, iceServers)).catch((err: unknown) => {
        this.#events.emit('error', err instanceof GatewayError ? err : new GatewayError('RTC', messageOf(err)))
      })
    }
    socket.onclose = (e) => {
      this.#socket = null
      this.#ready.reject(new GatewayError('DISCONNECTED', `the signaling connection closed (${e.code})`))
      this.#events.emit('close', { code: e.code, reason: e.reason })
    }
    socket.onerror = () => {}
  }

  #fail (err: GatewayError): void {
    this.#ready.reject(err)
    this.#events.emit('error', err)
  }

  async #handle (frame: Record<string, unknown>, iceServers: Promise<IceServer[]>): Promise<void> {
    if (this.#closed) return
    switch (frame.op) {
      case 'hello':
        this.user = stringField(frame, 'user') ?? null
        return
      case 'joined': {
        const peer = stringField(frame, 'peer')
        if (frame.room !== this.room || peer === undefined) return
        this.#iceServers = await iceServers
        this.peerId = peer
        const peers = Array.isArray(frame.peers) ? frame.peers.filter((id): id is string => typeof id === 'string') : []
        for (const id of peers) if (!this.peers.has(id)) this.#createPeer(id, true)
        this.#ready.resolve({ peer, peers })
        this.#events.emit('joined', { peer, peers })
        return
      }
      case 'signal': {
        const from = stringField(frame, 'from')
        if (frame.room !== this.room || from === undefined || this.peerId === null) return
        const data = isRecord(frame.data) ? frame.data : {}
        let peer = this.peers.get(from)
        if (peer === undefined) {
          // a newcomer's first offer creates the answering side; a stray candidate of a gone peer does not
          if (!isRecord(data.description) || data.description.type !== 'offer') return
          peer = this.#createPeer(from, false)
        }
        await this.#signal(peer, data)
        return
      }
      case 'refresh': {
        // the server asks for a fresh token before the current one expires (docs/protocol.md)
        if (typeof this.#options.token !== 'function') return
        let token: string | null
        try {
          token = await resolveToken(this.#options.token)
        } catch (err) {
          this.#events.emit('error', new GatewayError('TOKEN', `the token function failed: ${messageOf(err)}`))
          return
        }
        const socket = this.#socket
        if (token !== null && socket !== null && socket.readyState === OPEN) socket.send(JSON.stringify({ op: 'refresh', token }))
        return
      }
      case 'left':
        // the server left the call room by itself: the refreshed token no longer allows it
        if (frame.room !== this.room || refOf(frame) !== undefined) return
        this.#fail(new GatewayError('FORBIDDEN', `the server left room ${this.room}: the token no longer allows it`, { room: this.room }))
        this.close()
        return
      case 'peer-left': {
        const peer = this.peers.get(stringField(frame, 'peer') ?? '')
        if (peer !== undefined) this.#removePeer(peer, true)
        return
      }
      case 'event':
        this.#events.emit('event', frame.data, { room: stringField(frame, 'room') ?? '', event: stringField(frame, 'event') ?? '', id: stringField(frame, 'id') ?? '' })
        return
      case 'error': {
        const ref = refOf(frame)
        const err = new GatewayError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error'), ref === undefined ? {} : { ref })
        if (ref === this.#joinRef) {
          this.#fail(err)
          this.close()
        } else {
          this.#events.emit('error', err)
        }
      }
    }
  }

  #state (peer: RtcPeer): Negotiation {
    let state = this.#negotiation.get(peer)
    if (state === undefined) {
      state = { makingOffer: false, ignoreOffer: false, tracksAdded: false, candidates: [] }
      this.#negotiation.set(peer, state)
    }
    return state
  }

  #createPeer (id: string, initiator: boolean): RtcPeer {
    const pc = new this.#PeerConnection({ iceServers: this.#iceServers })
    // the newcomer (initiator) is impolite: its offers win a collision
    const peer = new RtcPeer(id, pc, !initiator)
    this.peers.set(id, peer)
    pc.onicecandidate = (e) => {
      if (e.candidate) this.#sendSignal(id, { candidate: typeof e.candidate.toJSON === 'function' ? e.candidate.toJSON() : e.candidate })
    }
    pc.onnegotiationneeded = () => { void this.#negotiate(peer) }
    pc.ontrack = (e) => {
      const streams = e.streams ?? []
      for (const stream of streams) peer.streams.add(stream)
      this.#events.emit('track', e.track, streams, peer)
    }
    pc.ondatachannel = (e) => { this.#setupChannel(peer, e.channel) }
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState
      this.#events.emit('state', state, peer)
      if (state === 'failed' && this.peers.get(id) === peer) this.#removePeer(peer, true)
    }
    this.#events.emit('peer', peer)
    if (initiator) {
      const label = this.#dataChannel
      if (typeof label === 'string' && label !== '') this.#setupChannel(peer, pc.createDataChannel(label, this.#options.channelOptions))
      this.#addTracks(peer)
    }
    return peer
  }

  #addTracks (peer: RtcPeer): void {
    this.#state(peer).tracksAdded = true
    for (const stream of this.#streams) for (const track of stream.getTracks()) peer.pc.addTrack(track, stream)
  }

  #setupChannel (peer: RtcPeer, channel: RTCDataChannel): void {
    peer.channels.set(channel.label, channel)
    if (channel.label === this.#dataChannel) peer.channel = channel
    channel.onopen = () => { this.#events.emit('channel', channel, peer) }
    channel.onmessage = (e: MessageEvent<unknown>) => { this.#events.emit('message', e.data, peer, channel) }
    channel.onclose = () => {
      if (peer.channels.get(channel.label) === channel) peer.channels.delete(channel.label)
      if (peer.channel === channel) peer.channel = null
    }
  }

  async #negotiate (peer: RtcPeer): Promise<void> {
    const pc = peer.pc
    const state = this.#state(peer)
    try {
      state.makingOffer = true
      await pc.setLocalDescription()
      this.#sendDescription(peer, pc.localDescription)
    } catch (err) {
      if (!peer.closed) this.#events.emit('error', new GatewayError('RTC', `negotiation with ${peer.id} failed: ${messageOf(err)}`))
    } finally {
      state.makingOffer = false
    }
  }

  async #signal (peer: RtcPeer, data: Record<string, unknown>): Promise<void> {
    const pc = peer.pc
    const state = this.#state(peer)
    if (isRecord(data.description)) {
      const description = data.description as unknown as RTCSessionDescriptionInit
      const collision = description.type === 'offer' && (state.makingOffer || pc.signalingState !== 'stable')
      state.ignoreOffer = !peer.polite && collision
      if (state.ignoreOffer) return
      await pc.setRemoteDescription(description)
      for (const candidate of state.candidates.splice(0)) await this.#addCandidate(peer, candidate)
      if (description.type === 'offer') {
        // the answerer's tracks ride on the transceivers of the offer where the kinds match
        if (!state.tracksAdded) this.#addTracks(peer)
        await pc.setLocalDescription()
        this.#sendDescription(peer, pc.localDescription)
      }
    } else if (isRecord(data.candidate)) {
      const candidate = data.candidate as RTCIceCandidateInit
      if (pc.remoteDescription === null || pc.remoteDescription === undefined) state.candidates.push(candidate)
      else await this.#addCandidate(peer, candidate)
    }
  }

  async #addCandidate (peer: RtcPeer, candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await peer.pc.addIceCandidate(candidate)
    } catch (err) {
      if (!this.#state(peer).ignoreOffer) throw err
    }
  }

  #sendDescription (peer: RtcPeer, description: RTCSessionDescription | null): void {
    if (description === null || peer.closed) return
    this.#sendSignal(peer.id, { description: { type: description.type, sdp: description.sdp } })
  }

  #sendSignal (to: string, data: Record<string, unknown>): void {
    const socket = this.#socket
    if (socket !== null && socket.readyState === OPEN) socket.send(JSON.stringify({ op: 'signal', room: this.room, to, data }))
  }

  #removePeer (peer: RtcPeer, announce: boolean): void {
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id)
    peer.close()
    if (announce) this.#events.emit('peer-left', peer)
  }
}
