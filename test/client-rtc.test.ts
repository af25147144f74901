import t, { type Test } from 'tap'
import { joinRtc, fetchIceServers, type RtcOptions, type RtcSession, type GatewayError } from '../public/client.js'

// The rtc helper of public/client.js with a scripted signaling socket and a fake RTCPeerConnection that keeps the
// signaling state machine (offer/answer, implicit rollback, negotiationneeded only when stable). It checks what the
// helper does with the protocol: who offers, candidate queueing, glare, cleanup. client-rtc-browser.test.ts runs the
// same helper with Chromium's real RTCPeerConnection.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- frames as the scripted server reads them, nested fields included
interface Frame { op: string, [key: string]: any }

async function until (what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

class FakeChannel {
  readyState = 'connecting'
  sent: unknown[] = []
  onopen: (() => void) | null = null
  onmessage: ((e: { data: unknown }) => void) | null = null
  onclose: (() => void) | null = null
  constructor (readonly label: string) {}
  send (data: unknown) { this.sent.push(data) }
  close () {
    this.readyState = 'closed'
    this.onclose?.()
  }

  open () {
    this.readyState = 'open'
    this.onopen?.()
  }
}

let sdpSeq = 0
class FakePC {
  static all: FakePC[] = []
  signalingState = 'stable'
  connectionState = 'new'
  localDescription: { type: string, sdp: string } | null = null
  remoteDescription: { type: string, sdp: string } | null = null
  onicecandidate: ((e: { candidate: unknown }) => void) | null = null
  onnegotiationneeded: (() => void) | null = null
  ontrack: ((e: unknown) => void) | null = null
  ondatachannel: ((e: { channel: FakeChannel }) => void) | null = null
  onconnectionstatechange: (() => void) | null = null
  senders: Array<{ track: unknown }> = []
  channels: FakeChannel[] = []
  candidates: unknown[] = []
  closed = false
  failLocal = false
  private negotiationQueued = false

  constructor (readonly config: { iceServers: unknown[] }) {
    FakePC.all.push(this)
  }

  createDataChannel (label: string) {
    const channel = new FakeChannel(label)
    this.channels.push(channel)
    this.needNegotiation()
    return channel
  }

  addTrack (track: unknown) {
    const sender = { track }
    this.senders.push(sender)
    // added while answering an offer: the track rides on the answer (a transceiver of the offer)
    if (this.signalingState !== 'have-remote-offer') this.needNegotiation()
    return sender
  }

  removeTrack (sender: { track: unknown }) {
    this.senders = this.senders.filter((s) => s !== sender)
    this.needNegotiation()
  }

  getSenders () { return this.senders }

  async setLocalDescription (description?: { type: string, sdp: string }) {
    if (this.failLocal) throw new Error('setLocalDescription failed')
    const type = description?.type ?? (this.signalingState === 'have-remote-offer' ? 'answer' : 'offer')
    this.localDescription = description ?? { type, sdp: `sdp-${type}-${++sdpSeq}` }
    this.signalingState = type === 'offer' ? 'have-local-offer' : 'stable'
  }

  async setRemoteDescription (description: { type: string, sdp: string }) {
    if (description.type === 'answer' && this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError: no offer to answer')
    if (description.type === 'offer' && this.signalingState === 'have-local-offer') this.localDescription = null // rollback
    this.remoteDescription = description
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable'
  }

  async addIceCandidate (candidate: unknown) {
    if (this.remoteDescription === null) throw new Error('no remote description')
    if ((candidate as { bad?: boolean }).bad === true) throw new Error('bad candidate')
    this.candidates.push(candidate)
  }

  close () {
    this.closed = true
    this.connectionState = 'closed'
  }

  // ---- test side ----
  state (state: string) {
    this.connectionState = state
    this.onconnectionstatechange?.()
  }

  private needNegotiation () {
    if (this.negotiationQueued) return
    this.negotiationQueued = true
    setTimeout(() => {
      this.negotiationQueued = false
      if (this.signalingState === 'stable' && !this.closed) this.onnegotiationneeded?.()
    }, 0)
  }
}

function signaling () {
  const sockets: FakeSocket[] = []
  class FakeSocket {
    readyState = 0
    sent: Frame[] = []
    onopen: (() => void) | null = null
    onmessage: ((e: { data: string }) => void) | null = null
    onclose: ((e: { code: number, reason: string }) => void) | null = null
    onerror: (() => void) | null = null
    closedWith: number | null = null
    constructor (readonly url: string) { sockets.push(this) }
    send (text: string) { this.sent.push(JSON.parse(text)) }
    close (code = 1005) {
      this.closedWith = code
      this.readyState = 3
      setTimeout(() => this.onclose?.({ code, reason: '' }), 0)
    }

    accept () {
      this.readyState = 1
      this.onopen?.()
      this.push({ op: 'hello', conn: 'x', user: null })
    }

    push (frame: Frame | string) { this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) }) }
    signals (to?: string) { return this.sent.filter((f) => f.op === 'signal' && (to === undefined || f.to === to)) }
  }
  return { FakeSocket, sockets, socket: async () => { await until('the signaling socket', () => sockets.length > 0); return sockets[0] } }
}

function track (kind: string) { return { kind, id: `${kind}-1` } }
function stream (...tracks: unknown[]) { return { getTracks: () => tracks } as unknown as MediaStream }

function session (t: Test, options: RtcOptions = {}) {
  const sig = signaling()
  const fetched: Array<{ url: string, init: RequestInit }> = []
  const s = joinRtc('http://gateway.test/rtc', 'public:call', {
    WebSocket: sig.FakeSocket,
    RTCPeerConnection: FakePC,
    fetch: (async (url: string, init: RequestInit) => {
      fetched.push({ url, init })
      return new Response(JSON.stringify([{ urls: 'stun:stun.test:3478' }]), { status: 200 })
    }) as typeof fetch,
    ...options
  })
  t.after(() => s.close())
  const events: Array<[string, ...unknown[]]> = []
  for (const name of ['joined', 'peer', 'peer-left', 'channel', 'message', 'track', 'state', 'event', 'error', 'close'] as const) {
    s.on(name, (...args: unknown[]) => { events.push([name, ...args]) })
  }
  return { s, events, fetched, ...sig }
}

async function joined (s: RtcSession, socket: { push: (f: Frame) => void }, peers: string[]) {
  socket.push({ op: 'joined', room: 'public:call', peer: 'me', peers, ref: 'j1' })
  return await s.ready
}

t.test('the newcomer opens a connection to every peer already there, with its data channel and tracks, and sends the offers', async (t) => {
  FakePC.all = []
  const camera = stream(track('video'))
  const { s, socket, fetched, events } = session(t, { token: 'tok', stream: camera })
  const ws = await socket()
  t.equal(ws.url, 'ws://gateway.test/rtc', 'no token in the URL')
  ws.accept()
  t.same(ws.sent.slice(0, 2), [{ op: 'auth', token: 'tok', ref: 'auth' }, { op: 'join', room: 'public:call', ref: 'j1' }])
  t.same(await joined(s, ws, ['p1', 'p2']), { peer: 'me', peers: ['p1', 'p2'] })
  t.equal(s.peerId, 'me')
  t.equal(s.user, null)
  t.equal(fetched[0].url, 'http://gateway.test/rtc/ice-servers')
  t.same(fetched[0].init.headers, { authorization: 'Bearer tok' })
  t.equal(FakePC.all.length, 2)
  t.same(FakePC.all[0].config, { iceServers: [{ urls: 'stun:stun.test:3478' }] })
  for (const pc of FakePC.all) {
    t.same(pc.channels.map((c) => c.label), ['data'])
    t.same(pc.senders.map((sender) => sender.track), [track('video')])
  }
  await until('two offers', () => ws.signals().length === 2)
  t.same(ws.signals().map((f) => [f.to, f.data.description.type]), [['p1', 'offer'], ['p2', 'offer']])
  t.same(events.filter((e) => e[0] === 'peer').map((e) => (e[1] as { id: string }).id), ['p1', 'p2'])
  t.same([...s.peers.keys()], ['p1', 'p2'])
  t.equal(s.peers.get('p1')?.polite, false, 'the newcomer is the impolite side')
})

t.test('remote candidates wait until the remote description is set, then are added in order', async (t) => {
  FakePC.all = []
  const { s, socket } = session(t)
  const ws = await socket()
  ws.accept()
  await joined(s, ws, ['p1'])
  const pc = FakePC.all[0]
  await until('the offer', () => ws.signals('p1').length === 1)
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { candidate: { candidate: 'c1' } } })
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { candidate: { candidate: 'c2' } } })
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'answer', sdp: 'answer-sdp' } } })
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { candidate: { candidate: 'c3' } } })
  await until('three candidates', () => pc.candidates.length === 3)
  t.same(pc.candidates, [{ candidate: 'c1' }, { candidate: 'c2' }, { candidate: 'c3' }])
  t.equal(pc.signalingState, 'stable')
  pc.onicecandidate?.({ candidate: { toJSON: () => ({ candidate: 'mine' }) } })
  pc.onicecandidate?.({ candidate: { candidate: 'plain' } })
  pc.onicecandidate?.({ candidate: null })
  t.same(ws.signals('p1').slice(1).map((f) => f.data), [{ candidate: { candidate: 'mine' } }, { candidate: { candidate: 'plain' } }])
})

t.test('the member already there answers an offer: it adds its tracks to the answer and gets the data channel', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t, { stream: stream(track('audio')) })
  const ws = await socket()
  ws.accept()
  await joined(s, ws, [])
  t.equal(FakePC.all.length, 0)
  ws.push({ op: 'peer-joined', room: 'public:call', peer: 'p9' })
  ws.push({ op: 'signal', room: 'public:call', from: 'gone', data: { candidate: { candidate: 'stray' } } })
  t.equal(FakePC.all.length, 0, 'only an offer creates the answering side')
  ws.push({ op: 'signal', room: 'public:call', from: 'p9', data: { description: { type: 'offer', sdp: 'offer-sdp' } } })
  await until('the answer', () => ws.signals('p9').length === 1)
  const pc = FakePC.all[0]
  t.same(ws.signals('p9')[0].data.description.type, 'answer')
  t.same(pc.senders.map((sender) => sender.track), [track('audio')], 'tracks ride on the answer')
  t.same(pc.channels, [], 'the answering side opens no channel of its own')
  const peer = s.peers.get('p9')!
  t.equal(peer.polite, true)
  const channel = new FakeChannel('data')
  pc.ondatachannel?.({ channel })
  t.equal(peer.channel, channel)
  t.equal(s.send('too early'), 0, 'nothing sent before the channel opens')
  t.equal(peer.send('x'), false)
  channel.open()
  t.equal(s.send('hello'), 1)
  t.same(channel.sent, ['hello'])
  channel.onmessage?.({ data: 'hi back' })
  const extra = new FakeChannel('files')
  pc.ondatachannel?.({ channel: extra })
  t.equal(peer.channels.get('files'), extra)
  extra.close()
  t.notOk(peer.channels.has('files'))
  const remote = stream(track('video'))
  pc.ontrack?.({ track: track('video'), streams: [remote] })
  pc.ontrack?.({ track: track('audio') })
  t.ok(peer.streams.has(remote))
  t.same(events.filter((e) => ['channel', 'message', 'track'].includes(e[0])).map((e) => e[0]), ['channel', 'message', 'track', 'track'])
  t.same(events.find((e) => e[0] === 'message')?.slice(1, 2), ['hi back'])
  channel.close()
  t.equal(peer.channel, null)
})

t.test('glare: the impolite newcomer ignores a colliding offer, the polite side rolls back and answers', async (t) => {
  FakePC.all = []
  const { s, socket } = session(t)
  const ws = await socket()
  ws.accept()
  await joined(s, ws, ['p1'])
  const newcomerPc = FakePC.all[0]
  await until('the offer', () => ws.signals('p1').length === 1)
  t.equal(newcomerPc.signalingState, 'have-local-offer')
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'offer', sdp: 'their-offer' } } })
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { candidate: { candidate: 'for-the-ignored-offer', bad: true } } })
  // a later signal, answered: the colliding offer and its candidate, pushed before it, have been handled by then
  ws.push({ op: 'signal', room: 'public:call', from: 'p7', data: { description: { type: 'offer', sdp: 'offer-7' } } })
  await until('the answer to p7', () => ws.signals('p7').length === 1)
  t.equal(newcomerPc.remoteDescription, null, 'impolite: the colliding offer is ignored')
  t.equal(ws.signals('p1').length, 1, 'and not answered')
  const politePc = FakePC.all[1]
  politePc.addTrack(track('video'))
  await until('the polite side renegotiates', () => ws.signals('p7').length === 2)
  t.equal(politePc.signalingState, 'have-local-offer')
  ws.push({ op: 'signal', room: 'public:call', from: 'p7', data: { description: { type: 'offer', sdp: 'colliding' } } })
  await until('the polite answer', () => ws.signals('p7').length === 3)
  t.equal(ws.signals('p7')[2].data.description.type, 'answer', 'polite: rolled back its own offer and answered')
  t.same(politePc.remoteDescription, { type: 'offer', sdp: 'colliding' })
})

t.test('a stream added or removed later renegotiates with every connected peer', async (t) => {
  FakePC.all = []
  const { s, socket } = session(t)
  const ws = await socket()
  ws.accept()
  await joined(s, ws, ['p1'])
  const pc = FakePC.all[0]
  await until('the first offer', () => ws.signals('p1').length === 1)
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'answer', sdp: 'a1' } } })
  await until('stable', () => pc.signalingState === 'stable')
  const camera = stream(track('video'))
  s.addStream(camera)
  s.addStream(camera)
  t.equal(pc.senders.length, 1, 'a stream is added once')
  await until('the renegotiation offer', () => ws.signals('p1').length === 2)
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'answer', sdp: 'a2' } } })
  await until('stable again', () => pc.signalingState === 'stable')
  s.removeStream(camera)
  s.removeStream(camera)
  t.equal(pc.senders.length, 0)
  await until('another offer', () => ws.signals('p1').length === 3)
})

t.test('peer-left and a failed connection close that peer; room events and errors are passed on', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t)
  const ws = await socket()
  ws.accept()
  await joined(s, ws, ['p1', 'p2'])
  const [pc1, pc2] = FakePC.all
  ws.push({ op: 'peer-left', room: 'public:call', peer: 'p1' })
  ws.push({ op: 'peer-left', room: 'public:call', peer: 'unknown' })
  await until('p1 gone', () => !s.peers.has('p1'))
  t.ok(pc1.closed)
  t.equal(pc1.channels[0].readyState, 'closed')
  pc2.state('connected')
  pc2.state('failed')
  t.notOk(s.peers.has('p2'))
  t.ok(pc2.closed)
  ws.push({ op: 'event', room: 'public:call', event: 'note', data: { n: 1 }, id: 'e-1' })
  ws.push({ op: 'error', code: 'NOT_FOUND', message: 'peer p1 is not in the room', ref: 's1' })
  ws.push('not json')
  ws.push({ op: 'signal', room: 'other-room', from: 'p3', data: {} })
  await until('the error', () => events.some((e) => e[0] === 'error'))
  t.same(events.filter((e) => e[0] === 'peer-left').map((e) => (e[1] as { id: string }).id), ['p1', 'p2'])
  t.same(events.filter((e) => e[0] === 'state').map((e) => e[1]), ['connected', 'failed'])
  t.same(events.find((e) => e[0] === 'event')?.slice(1), [{ n: 1 }, { room: 'public:call', event: 'note', id: 'e-1' }])
  t.match(events.find((e) => e[0] === 'error')?.[1], { code: 'NOT_FOUND' })
})

t.test('a failed negotiation is reported as an error event', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t)
  const ws = await socket()
  ws.accept()
  const original = FakePC.prototype.setLocalDescription
  FakePC.prototype.setLocalDescription = async function () { throw new Error('no codec') }
  t.after(() => { FakePC.prototype.setLocalDescription = original })
  await joined(s, ws, ['p1'])
  await until('the error', () => events.some((e) => e[0] === 'error'))
  t.match(events.find((e) => e[0] === 'error')?.[1], { code: 'RTC', message: /negotiation with p1 failed: no codec/ })
  FakePC.prototype.setLocalDescription = original
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'answer', sdp: 'x' } } })
  await until('a second error', () => events.filter((e) => e[0] === 'error').length === 2)
  t.match(events.filter((e) => e[0] === 'error')[1][1], { code: 'RTC' }, 'an answer without an offer fails in the browser too')
})

t.test('a refused join (ROOM_FULL) rejects ready and ends the session', async (t) => {
  const { s, socket, events } = session(t, { token: 'tok', auth: 'query', iceServers: [] })
  const ws = await socket()
  t.equal(ws.url, 'ws://gateway.test/rtc?token=tok')
  ws.accept()
  t.same(ws.sent, [{ op: 'join', room: 'public:call', ref: 'j1' }])
  ws.push({ op: 'error', code: 'ROOM_FULL', message: 'room public:call is full (8)', ref: 'j1' })
  await t.rejects(s.ready, { code: 'ROOM_FULL' })
  t.match(events.find((e) => e[0] === 'error')?.[1], { code: 'ROOM_FULL' })
  t.equal(ws.closedWith, 1000)
})

t.test('close() leaves the room, closes the connections and the socket; a dropped socket emits close', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t)
  const ws = await socket()
  ws.accept()
  await joined(s, ws, ['p1'])
  s.close()
  s.leave()
  t.same(ws.sent.at(-1), { op: 'leave', room: 'public:call' })
  t.equal(ws.closedWith, 1000)
  t.ok(FakePC.all[0].closed)
  t.equal(s.peers.size, 0)
  await until('close', () => events.some((e) => e[0] === 'close'))
  ws.push({ op: 'joined', room: 'public:call', peer: 'late', peers: ['p5'] })
  t.equal(FakePC.all.length, 1, 'nothing happens after close')

  const early = session(t)
  const ws2 = await early.socket()
  early.s.close()
  await t.rejects(early.s.ready, { code: 'CLOSED' })
  t.equal(ws2.closedWith, 1005, 'a socket not yet open is just closed')

  const dropped = session(t)
  const ws3 = await dropped.socket()
  ws3.accept()
  ws3.close(1006)
  await t.rejects(dropped.s.ready, { code: 'DISCONNECTED' })
  await until('close event', () => dropped.events.some((e) => e[0] === 'close'))
})

t.test('a token function that throws fails the session; missing implementations are refused', async (t) => {
  const sig = signaling()
  const s = joinRtc('ws://h/rtc', 'r', { WebSocket: sig.FakeSocket, RTCPeerConnection: FakePC, token: () => { throw new Error('no session') } })
  const errors: GatewayError[] = []
  s.on('error', (err) => { errors.push(err) })
  await t.rejects(s.ready, { code: 'TOKEN' })
  t.match(errors, [{ code: 'TOKEN' }])
  t.throws(() => s.on('error', 'x' as never), TypeError)
  t.throws(() => joinRtc('ws://h/rtc', 'r', { WebSocket: sig.FakeSocket }), /no RTCPeerConnection/)
  const original = (globalThis as unknown as Record<string, unknown>).WebSocket
  delete (globalThis as unknown as Record<string, unknown>).WebSocket
  t.after(() => { (globalThis as unknown as Record<string, unknown>).WebSocket = original })
  t.throws(() => joinRtc('ws://h/rtc', 'r', { RTCPeerConnection: FakePC }), /no WebSocket/)
})

t.test('fetchIceServers: a list or { iceServers }, invalid entries dropped, [] when the route is missing or fails', async (t) => {
  const answer = (status: number, body: unknown) => (async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch
  const turn = { urls: ['turn:t.test:3478'], username: 'u', credential: 'c' }
  t.same(await fetchIceServers('ws://h/rtc/ice-servers', { fetch: answer(200, [turn, { urls: 5 }, null, 'x']) }), [turn])
  t.same(await fetchIceServers('http://h/rtc/ice-servers', { fetch: answer(200, { iceServers: [turn] }) }), [turn])
  t.same(await fetchIceServers('http://h/x', { fetch: answer(200, { other: true }) }), [])
  t.same(await fetchIceServers('http://h/x', { fetch: answer(404, { message: 'not found' }) }), [])
  t.same(await fetchIceServers('http://h/x', { fetch: (async () => { throw new Error('offline') }) as unknown as typeof fetch }), [])
  let headers: unknown
  await fetchIceServers('http://h/x', { token: 'tok', fetch: (async (_u: string, init: RequestInit) => { headers = init.headers; return new Response('[]') }) as unknown as typeof fetch })
  t.same(headers, { authorization: 'Bearer tok' })
})

t.test('frames a server should not send are ignored or read safely', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t)
  const ws = await socket()
  ws.accept()
  ws.push({ op: 'joined', room: 'public:call' })
  ws.push({ op: 'joined', room: 'another', peer: 'x', peers: [] })
  ws.push({ op: 'signal', room: 'public:call', from: 'p1', data: { description: { type: 'offer', sdp: 'o' } } })
  ws.push({ op: 'joined', room: 'public:call', peer: 'me', peers: 'p1' })
  t.same(await s.ready, { peer: 'me', peers: [] }, 'only a joined of this room with a peer id counts; peers that is not a list is none')
  t.equal(FakePC.all.length, 0, 'a signal before joined is not answered')
  ws.push({ op: 'joined', room: 'public:call', peer: 'me', peers: ['p1', 5] })
  ws.push({ op: 'signal', room: 'public:call', from: 'p2', data: 'not an object' })
  ws.push({ op: 'peer-left', room: 'public:call' })
  ws.push({ op: 'event', data: 1 })
  ws.push({ op: 'error' })
  await until('the events', () => events.some((e) => e[0] === 'error'))
  t.same([...s.peers.keys()], ['p1'], 'string peer ids only')
  t.same(events.find((e) => e[0] === 'event')?.slice(1), [1, { room: '', event: '', id: '' }])
  t.match(events.find((e) => e[0] === 'error')?.[1], { code: 'ERROR', message: 'error' })
})

t.test('a stream added later reaches a peer that answered; a description that fails with a non-Error is reported as RTC', async (t) => {
  FakePC.all = []
  const { s, socket, events } = session(t, { dataChannel: false })
  const ws = await socket()
  ws.accept()
  await joined(s, ws, [])
  ws.push({ op: 'signal', room: 'public:call', from: 'p4', data: { description: { type: 'offer', sdp: 'o' } } })
  await until('the answer', () => ws.signals('p4').length === 1)
  const pc = FakePC.all[0]
  s.addStream(stream(track('video')))
  t.equal(pc.senders.length, 1, 'the answering side sends the new stream to p4 too')
  const original = FakePC.prototype.setRemoteDescription
  FakePC.prototype.setRemoteDescription = async function () { throw 'not an Error' }
  t.after(() => { FakePC.prototype.setRemoteDescription = original })
  ws.push({ op: 'signal', room: 'public:call', from: 'p4', data: { description: { type: 'answer', sdp: 'a' } } })
  await until('the error', () => events.some((e) => e[0] === 'error'))
  t.match(events.find((e) => e[0] === 'error')?.[1], { code: 'RTC', message: 'not an Error' })
  t.same(pc.channels, [], 'dataChannel false: no channel of its own')
})

t.test('token refresh: asked by the server, a session with a token function sends a fresh token; a room the server left ends it', async (t) => {
  let n = 0
  const { s, socket, events } = session(t, { token: () => `tok-${++n}`, iceServers: [] })
  const ws = await socket()
  ws.accept()
  await joined(s, ws, [])
  ws.push({ op: 'refresh', exp: 1 })
  await until('the refresh', () => ws.sent.some((f) => f.op === 'refresh'))
  t.same(ws.sent.find((f) => f.op === 'refresh'), { op: 'refresh', token: 'tok-2' })
  ws.push({ op: 'refreshed', exp: 2 })
  ws.push({ op: 'left', room: 'other' })
  ws.push({ op: 'left', room: 'public:call', ref: 'x' })
  ws.push({ op: 'left', room: 'public:call' })
  await until('the error', () => events.some((e) => e[0] === 'error'))
  t.match(events.filter((e) => e[0] === 'error').map((e) => e[1]), [{ code: 'FORBIDDEN', room: 'public:call' }])
  t.equal(ws.closedWith, 1000, 'the session is over')

  const fixed = session(t, { token: 'fixed', iceServers: [] })
  const ws2 = await fixed.socket()
  ws2.accept()
  await joined(fixed.s, ws2, [])
  ws2.push({ op: 'refresh', exp: 1 })
  ws2.push({ op: 'event', room: 'public:call', event: 'after', data: null, id: 'e-1' })
  await until('the later event', () => fixed.events.some((e) => e[0] === 'event'))
  t.notOk(ws2.sent.some((f) => f.op === 'refresh'), 'a fixed token is not refreshed')

  let calls = 0
  const failing = session(t, { token: () => { if (++calls > 1) throw new Error('logged out'); return 'tok' }, iceServers: [] })
  const ws3 = await failing.socket()
  ws3.accept()
  await joined(failing.s, ws3, [])
  ws3.push({ op: 'refresh', exp: 1 })
  await until('the token error', () => failing.events.some((e) => e[0] === 'error'))
  t.match(failing.events.find((e) => e[0] === 'error')?.[1], { code: 'TOKEN', message: /logged out/ })
})
