import { createHash } from 'node:crypto'
import type { RoomRegistry } from '../rooms/registry.js'
import { isPromise, type Encoder, type Member, type RoomEvent } from '../rooms/types.js'
import { RtcFrames } from './signal.js'

/**
 * Who is in which rtc room, on this instance and on the others, and the relay of signals between them. Free of
 * Fastify: the route hands in its connections as `RtcPeerHandle`s.
 *
 * Peers are the connections (`peer` = the connection id, which is unique across instances). Each peer in room `r`
 * is a member of `r` itself (so room events and presence see it) and, through a small control member, of the
 * companion room `rtc@<hash of r>` (`controlRoomOf`). Everything that has to reach the room's peers on every instance
 * goes through the registry's own seams, so it works with the in-memory bus and with a bus between instances alike:
 *
 * - `peer-joined` / `peer-left` are events published to the control room; every instance with peers in `r` hears
 *   them and tells its own peers (`peer-joined`/`peer-left` frames) and keeps a directory of the remote ones;
 * - a peer that hears of a newcomer on another instance answers it directly (`registry.direct` to the newcomer's
 *   control member: "present"), so a newcomer learns the peers already there; it waits for them (until the directory
 *   holds as many peers as the control room's presence counts, at most `discoveryTimeoutMs`) before its `joined`;
 * - a `signal` goes with `registry.direct` to the target's control member, here or on another instance, which hands
 *   it to the target connection (or holds it until the target's `joined` has gone out);
 * - an instance that crashes announces nothing: with a bus that tracks instances (`registry.liveInstances()`) the
 *   remote peers whose control member's prefix is no longer alive are dropped, with a `peer-left` to the local
 *   peers of their room, on a timer and before each newcomer's `joined`.
 *
 * With the in-memory bus every step is synchronous and no waiting happens. Capacity counts rtc peers (not ws or SSE
 * members of the same room): the local directory or the control room's presence, whichever is larger.
 */

/** What RtcRooms needs of a connection. */
export interface RtcPeerHandle {
  readonly id: string
  /** false once the connection is closing or gone */
  readonly open: boolean
  send (frame: object): boolean
}

export interface RtcRoomsLog {
  debug (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

export interface RtcRoomsOptions {
  registry: RoomRegistry
  /** rtc peers a room may hold */
  capacity: number
  /** how long a newcomer waits for the peers of other instances to answer before its `joined` goes out */
  discoveryTimeoutMs: number
  /**
   * how often to look for peers of crashed instances; default a third of `registry.instanceTtlMs`, never with a bus
   * that does not track instances (the in-memory bus); 0: only before a newcomer's `joined`
   */
  livenessCheckMs?: number
  log: RtcRoomsLog
}

export type EnterResult =
  | { ok: true, peers: string[] }
  | { ok: false, code: 'ROOM_FULL' | 'UNAVAILABLE', message: string }
  /** the connection ended while it was joining: nothing to answer */
  | { ok: false, code: 'GONE' }

/** `sent`; `not-found`: no such peer in the room; `not-member`: the sender is not (yet) in the room. */
export type SignalOutcome = 'sent' | 'not-found' | 'not-member'

type Phase = 'joining' | 'joined' | 'gone'

interface PeerEntry {
  readonly room: string
  readonly controlRoom: string
  readonly peer: RtcPeerHandle
  readonly control: ControlMember
  phase: Phase
  /** signals that arrived while joining, sent right after `joined` */
  held: object[]
  /** wakes a newcomer waiting for remote peers */
  wake: (() => void) | null
}

/** Control events and direct messages between instances (JSON, so a bus can carry them). */
interface PresentMessage { rtc: 'present', room: string, peer: string, control: string }
interface SignalMessage { rtc: 'signal', room: string, from: string, data: unknown }

const MAX_HELD = 256
/** peers per room remembered as dropped for a crashed instance (see `departed`) */
const MAX_DEPARTED = 1024
const CONTROL_TRANSPORT = 'rtc-control'
/** hands the event itself to the control members (nothing to encode) */
const controlEncoder: Encoder<RoomEvent> = { name: 'rtc-control', encode: (event) => event }

function isGone (entry: PeerEntry): boolean {
  return entry.phase === 'gone'
}

/** The instance part of a member id (`<instance>.<n>`). */
function instanceOf (memberId: string): string {
  const dot = memberId.indexOf('.')
  return dot === -1 ? memberId : memberId.slice(0, dot)
}

/** A remote peer as the directory held it when a liveness question went out. */
type Known = readonly [room: string, peer: string, control: string]

/** The companion room that carries `peer-joined`/`peer-left` of rtc room `room` between instances. */
export function controlRoomOf (room: string): string {
  return `rtc@${createHash('sha256').update(room, 'utf8').digest('base64url')}`
}

export class RtcRooms {
  private readonly registry: RoomRegistry
  private readonly capacity: number
  private readonly discoveryTimeoutMs: number
  private readonly log: RtcRoomsLog
  /** room → peer id → entry, for peers of this RtcRooms */
  private readonly local = new Map<string, Map<string, PeerEntry>>()
  /** room → peer id → control member id, for peers elsewhere (other instances, other rtc gateways) */
  private readonly remote = new Map<string, Map<string, string>>()
  /** peer id → room → entry */
  private readonly byPeer = new Map<string, Map<string, PeerEntry>>()
  /**
   * room → remote peers dropped because their instance stopped: a `peer-left` of theirs still in flight (an instance
   * shutting down announces its peers and leaves the live list at about the same time) is not told twice
   */
  private readonly departed = new Map<string, Set<string>>()
  private readonly livenessTimer: NodeJS.Timeout | null = null
  private checking = false
  private closed = false

  constructor (options: RtcRoomsOptions) {
    this.registry = options.registry
    this.capacity = options.capacity
    this.discoveryTimeoutMs = options.discoveryTimeoutMs
    this.log = options.log
    const ttl = this.registry.instanceTtlMs
    const every = options.livenessCheckMs ?? (ttl === null ? 0 : Math.max(Math.floor(ttl / 3), 10))
    if (every > 0) {
      this.livenessTimer = setInterval(() => { void this.dropCrashed() }, every)
      this.livenessTimer.unref()
    }
  }

  /** Stops the liveness timer (the peers themselves go with their connections). */
  close (): void {
    this.closed = true
    if (this.livenessTimer !== null) clearInterval(this.livenessTimer)
  }

  /** True while `peer` is joining or in `room`. */
  has (peer: string, room: string): boolean {
    return this.byPeer.get(peer)?.has(room) === true
  }

  /** The other peers of `room` known here, local ones first. */
  peersOf (room: string, except: string): string[] {
    const peers: string[] = []
    for (const id of this.local.get(room)?.keys() ?? []) if (id !== except) peers.push(id)
    for (const id of this.remote.get(room)?.keys() ?? []) if (id !== except) peers.push(id)
    return peers
  }

  /** rtc peers of `room` known here (this one's and other instances'). */
  count (room: string): number {
    return (this.local.get(room)?.size ?? 0) + (this.remote.get(room)?.size ?? 0)
  }

  /** Rooms `peer` is joining or in. */
  roomsOf (peer: string): string[] {
    return [...(this.byPeer.get(peer)?.keys() ?? [])]
  }

  /**
   * Makes `peer` a peer of `room`: checks capacity, announces it to the room's peers everywhere and learns the peers
   * of other instances. The caller then sends `joined` with `peers` and calls `activate`.
   */
  async enter (peer: RtcPeerHandle, room: string): Promise<EnterResult> {
    const controlRoom = controlRoomOf(room)
    if (this.count(room) >= this.capacity) return this.full(room)
    let counted: number
    try {
      counted = (await this.registry.presence(controlRoom)).members
    } catch (err) {
      this.log.warn({ err, room }, 'rtc: room presence unavailable')
      return { ok: false, code: 'UNAVAILABLE', message: 'the room cannot be joined right now; try again later' }
    }
    if (!peer.open) return { ok: false, code: 'GONE' }
    // from here to the registration nothing awaits, so two joins on this instance cannot both take the last place
    if (Math.max(this.count(room), counted) >= this.capacity) return this.full(room)

    const entry: PeerEntry = {
      room,
      controlRoom,
      peer,
      control: new ControlMember(this.registry.nextMemberId(),
        (event) => { this.onControlEvent(entry, event) },
        (message) => { this.onControlDirect(entry, message) }),
      phase: 'joining',
      held: [],
      wake: null
    }
    let peers = this.local.get(room)
    if (peers === undefined) {
      peers = new Map()
      this.local.set(room, peers)
      this.remote.set(room, new Map())
    }
    peers.set(peer.id, entry)
    let rooms = this.byPeer.get(peer.id)
    if (rooms === undefined) {
      rooms = new Map()
      this.byPeer.set(peer.id, rooms)
    }
    rooms.set(room, entry)
    this.registry.join(controlRoom, entry.control)

    try {
      await this.registry.publish(controlRoom, 'peer-joined', { room, peer: peer.id, control: entry.control.id })
    } catch (err) {
      this.log.warn({ err, room, peer: peer.id }, 'rtc: join could not be announced')
      this.depart(entry, false)
      return { ok: false, code: 'UNAVAILABLE', message: 'the room cannot be joined right now; try again later' }
    }
    // the connection may have ended while this awaited (TypeScript cannot see that)
    if (isGone(entry)) return { ok: false, code: 'GONE' }
    // asked alongside discovery (no extra wait), so `joined` does not list the peers of a crashed instance
    const known = this.knownRemote(room)
    const live = known.length === 0 ? null : this.askLive()
    await this.discover(entry)
    if (isGone(entry)) return { ok: false, code: 'GONE' }
    if (live !== null) {
      const answer = isPromise(live) ? await live : live
      if (answer !== null) this.dropDead(known, answer)
      if (isGone(entry)) return { ok: false, code: 'GONE' }
    }
    return { ok: true, peers: this.peersOf(room, peer.id) }
  }

  /** After `joined` went out: the peer takes signals and room notices; signals held meanwhile are sent. */
  activate (peer: string, room: string): void {
    const entry = this.byPeer.get(peer)?.get(room)
    if (entry === undefined || entry.phase !== 'joining') return
    entry.phase = 'joined'
    const held = entry.held
    entry.held = []
    for (const frame of held) entry.peer.send(frame)
  }

  /** Removes `peer` from `room` and tells the others; false when it was not there. */
  leave (peer: string, room: string): boolean {
    const entry = this.byPeer.get(peer)?.get(room)
    if (entry === undefined) return false
    this.depart(entry, true)
    return true
  }

  /** Removes `peer` from every room (its connection ended) and tells the others. */
  leaveAll (peer: string): string[] {
    const rooms = this.byPeer.get(peer)
    if (rooms === undefined) return []
    const left = [...rooms.keys()]
    for (const entry of [...rooms.values()]) this.depart(entry, true)
    return left
  }

  /**
   * Relays `data` from `from` to peer `to` of `room` as a `signal` frame with `from` set here. A promise when the
   * target is on another instance (the bus answers whether it got there).
   */
  signal (from: string, room: string, to: string, data: unknown): SignalOutcome | Promise<SignalOutcome> {
    const sender = this.byPeer.get(from)?.get(room)
    if (sender === undefined || sender.phase !== 'joined') return 'not-member'
    if (to === from) return 'not-found'
    const target = this.local.get(room)?.get(to)?.control.id ?? this.remote.get(room)?.get(to)
    if (target === undefined) return 'not-found'
    const message: SignalMessage = { rtc: 'signal', room, from, data }
    let sent: boolean | Promise<boolean>
    try {
      sent = this.registry.direct(target, message)
    } catch (err) {
      this.log.warn({ err, room, to }, 'rtc: signal relay failed')
      return 'not-found'
    }
    if (!isPromise(sent)) return this.relayed(sent, room, to)
    return sent.then((ok) => this.relayed(ok, room, to), (err: unknown) => {
      this.log.warn({ err, room, to }, 'rtc: signal relay failed')
      return 'not-found' as const
    })
  }

  /**
   * Drops the remote peers whose instance is no longer alive and tells the local peers of their rooms `peer-left`
   * (once). Runs on the liveness timer; resolves how many were dropped (0 when the bus cannot tell).
   */
  async dropCrashed (): Promise<number> {
    if (this.checking || this.closed) return 0
    const known = this.knownRemote()
    if (known.length === 0) return 0
    this.checking = true
    try {
      const live = await this.askLive()
      return live === null || this.closed ? 0 : this.dropDead(known, live)
    } finally {
      this.checking = false
    }
  }

  /**
   * Remote peers known now, in every room or one. Only these are judged by the answer to a question asked after
   * this: an instance is listed alive before it announces anything, so a peer announced while the question is out
   * is never mistaken for one of a crashed instance.
   */
  private knownRemote (only?: string): Known[] {
    const known: Known[] = []
    for (const [room, directory] of this.remote) {
      if (only !== undefined && room !== only) continue
      for (const [peer, control] of directory) known.push([room, peer, control])
    }
    return known
  }

  /** `registry.liveInstances()`, with a failure as "cannot tell". */
  private askLive (): ReadonlySet<string> | null | Promise<ReadonlySet<string> | null> {
    const failed = (err: unknown) => {
      this.log.debug({ err }, 'rtc: live instances unknown')
      return null
    }
    try {
      const live = this.registry.liveInstances()
      return isPromise(live) ? live.catch(failed) : live
    } catch (err) {
      return failed(err)
    }
  }

  private dropDead (known: readonly Known[], live: ReadonlySet<string>): number {
    let dropped = 0
    const instances = new Set<string>()
    for (const [room, peer, control] of known) {
      const instance = instanceOf(control)
      if (live.has(instance)) continue
      const directory = this.remote.get(room)
      // gone meanwhile (peer-left, a failed signal) or announced again with another control member
      if (directory?.get(peer) !== control) continue
      directory.delete(peer)
      let departed = this.departed.get(room)
      if (departed === undefined) {
        departed = new Set()
        this.departed.set(room, departed)
      }
      departed.add(peer)
      if (departed.size > MAX_DEPARTED) departed.delete(departed.values().next().value as string)
      for (const entry of this.local.get(room)?.values() ?? []) {
        if (entry.phase === 'joined') entry.peer.send(RtcFrames.peerLeft(room, peer))
      }
      instances.add(instance)
      dropped++
    }
    if (dropped > 0) this.log.warn({ dropped, instances: [...instances] }, 'rtc: peers of instances without heartbeat dropped')
    return dropped
  }

  /** A control event of `entry`'s room (from this instance or another). */
  private onControlEvent (entry: PeerEntry, event: RoomEvent): void {
    if (entry.phase === 'gone') return
    const data = event.data as { room?: unknown, peer?: unknown, control?: unknown } | null
    if (data === null || typeof data !== 'object' || data.room !== entry.room || typeof data.peer !== 'string') return
    const other = data.peer
    if (other === entry.peer.id) return
    const mine = this.local.get(entry.room)?.has(other) === true
    if (event.event === 'peer-joined') {
      if (typeof data.control !== 'string') return
      if (!mine) {
        this.remote.get(entry.room)?.set(other, data.control)
        this.departed.get(entry.room)?.delete(other)
        this.answerNewcomer(entry, data.control)
      }
      if (entry.phase === 'joined') entry.peer.send(RtcFrames.peerJoined(entry.room, other))
    } else if (event.event === 'peer-left') {
      if (!mine) {
        this.remote.get(entry.room)?.delete(other)
        // already told when its instance was found gone
        if (this.departed.get(entry.room)?.has(other) === true) return
      }
      if (entry.phase === 'joined') entry.peer.send(RtcFrames.peerLeft(entry.room, other))
    }
  }

  /** A direct message for `entry`'s control member: a relayed signal, or a peer announcing itself to a newcomer. */
  private onControlDirect (entry: PeerEntry, message: unknown): void {
    if (entry.phase === 'gone' || message === null || typeof message !== 'object') return
    const m = message as { rtc?: unknown, room?: unknown, from?: unknown, data?: unknown, peer?: unknown, control?: unknown }
    if (m.room !== entry.room) return
    if (m.rtc === 'signal' && typeof m.from === 'string') {
      const frame = RtcFrames.signal(entry.room, m.from, m.data)
      if (entry.phase === 'joined') {
        entry.peer.send(frame)
      } else if (entry.held.length < MAX_HELD) {
        entry.held.push(frame)
      } else {
        this.log.debug({ room: entry.room, peer: entry.peer.id }, 'rtc: too many signals before joined: dropped')
      }
    } else if (m.rtc === 'present' && typeof m.peer === 'string' && typeof m.control === 'string') {
      if (m.peer === entry.peer.id || this.local.get(entry.room)?.has(m.peer) === true) return
      const directory = this.remote.get(entry.room)
      if (directory === undefined) return
      const known = directory.has(m.peer)
      directory.set(m.peer, m.control)
      this.departed.get(entry.room)?.delete(m.peer)
      if (entry.phase === 'joining') entry.wake?.()
      // answered after `joined` went out (discovery timed out): a late notice is better than none
      else if (!known) entry.peer.send(RtcFrames.peerJoined(entry.room, m.peer))
    }
  }

  private full (room: string): EnterResult {
    return { ok: false, code: 'ROOM_FULL', message: `room ${room} is full (${this.capacity} peers)` }
  }

  private relayed (ok: boolean, room: string, to: string): SignalOutcome {
    if (ok) return 'sent'
    // gone from every instance (e.g. its instance crashed): forget it
    this.remote.get(room)?.delete(to)
    return 'not-found'
  }

  /** Tells a newcomer elsewhere that `entry`'s peer is in the room. */
  private answerNewcomer (entry: PeerEntry, newcomerControl: string): void {
    const message: PresentMessage = { rtc: 'present', room: entry.room, peer: entry.peer.id, control: entry.control.id }
    try {
      const sent = this.registry.direct(newcomerControl, message)
      if (isPromise(sent)) {
        sent.catch((err: unknown) => { this.log.warn({ err, room: entry.room }, 'rtc: presence answer failed') })
      }
    } catch (err) {
      this.log.warn({ err, room: entry.room }, 'rtc: presence answer failed')
    }
  }

  /** Waits (bounded) until the directory holds every rtc peer the control room's presence counts. */
  private async discover (entry: PeerEntry): Promise<void> {
    let expected: number
    try {
      expected = (await this.registry.presence(entry.controlRoom)).members
    } catch {
      return
    }
    const complete = () => entry.phase === 'gone' || this.count(entry.room) >= expected
    if (complete() || this.discoveryTimeoutMs === 0) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.discoveryTimeoutMs)
      function done () {
        clearTimeout(timer)
        entry.wake = null
        resolve()
      }
      entry.wake = () => { if (complete()) done() }
    })
    if (entry.phase !== 'gone' && !complete()) {
      this.log.debug({ room: entry.room, expected, known: this.count(entry.room) }, 'rtc: not every peer answered in time')
    }
  }

  private depart (entry: PeerEntry, announce: boolean): void {
    if (entry.phase === 'gone') return
    entry.phase = 'gone'
    entry.held = []
    entry.wake?.()
    const { room, peer } = entry
    const peers = this.local.get(room)
    if (peers !== undefined) {
      peers.delete(peer.id)
      if (peers.size === 0) {
        // no peer here any more: this instance stops hearing the room's control events, so its directory would rot
        this.local.delete(room)
        this.remote.delete(room)
        this.departed.delete(room)
      }
    }
    const rooms = this.byPeer.get(peer.id)
    if (rooms !== undefined) {
      rooms.delete(room)
      if (rooms.size === 0) this.byPeer.delete(peer.id)
    }
    this.registry.leave(entry.controlRoom, entry.control)
    if (!announce) return
    try {
      const published = this.registry.publish(entry.controlRoom, 'peer-left', { room, peer: peer.id })
      if (isPromise(published)) {
        published.catch((err: unknown) => { this.log.warn({ err, room, peer: peer.id }, 'rtc: peer-left could not be announced') })
      }
    } catch (err) {
      // the registry is closed (shutdown): every instance's peers notice the dropped connections themselves
      this.log.debug({ err, room, peer: peer.id }, 'rtc: peer-left could not be announced')
    }
  }
}

/** A peer's membership of its room's control room: takes control events and direct messages for the peer. */
class ControlMember implements Member<RoomEvent> {
  readonly user = null
  readonly transport = CONTROL_TRANSPORT
  readonly encoder = controlEncoder

  constructor (readonly id: string,
    private readonly onEvent: (event: RoomEvent) => void,
    private readonly onDirect: (message: unknown) => void) {}

  deliver (event: RoomEvent): void {
    this.onEvent(event)
  }

  direct (message: unknown): void {
    this.onDirect(message)
  }
}
