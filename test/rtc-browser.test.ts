import t from 'tap'
import Fastify from 'fastify'
import { rtcSignalGateway } from '../plugins/rtc-signal.js'
import { launchChromium, openPage, withTimeout } from './helpers/chromium.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- values of the browser page (globals, DOM and WebRTC events) this script runs in
type InPage = any
declare const window: InPage
declare const document: InPage

/**
 * Two pages of headless Chromium (two browser contexts: separate profiles, like two people) meet in a room through
 * `/rtc` and connect peer to peer on loopback with `iceServers: []`. The page script below is the whole client: plain
 * WebSocket + RTCPeerConnection, no helper library. The newcomer (whose `joined` lists a peer) makes the offer; the
 * other answers; remote candidates wait until the remote description is set.
 */
function pageScript ({ url, room, video }: { url: string, room: string, video: boolean }): Promise<string> {
  const state: InPage = { peer: null, remote: null, signalsFrom: [], messages: [], frame: null, errors: [] }
  window.state = state
  return new Promise((resolve, reject) => {
    const ws = new (window.WebSocket)(url)
    const send = (frame: unknown) => { ws.send(JSON.stringify(frame)) }
    let pc: InPage = null
    const queued: unknown[] = []
    let chain = Promise.resolve()

    const connect = (remote: string) => {
      state.remote = remote
      pc = new window.RTCPeerConnection({ iceServers: [] })
      window.pc = pc
      pc.onicecandidate = (e: InPage) => {
        if (e.candidate !== null) send({ op: 'signal', room, to: remote, data: e.candidate.toJSON() })
      }
      pc.ondatachannel = (e: InPage) => {
        e.channel.onmessage = (m: InPage) => { state.messages.push(m.data) }
      }
      pc.ontrack = (e: InPage) => {
        const element = document.createElement('video')
        element.muted = true
        element.autoplay = true
        element.playsInline = true
        element.srcObject = e.streams[0] ?? new window.MediaStream([e.track])
        document.body.appendChild(element)
        element.play().catch(() => {})
        window.firstFrame = new Promise((resolve) => {
          element.requestVideoFrameCallback((_now: number, meta: InPage) => { resolve({ how: 'requestVideoFrameCallback', width: meta.width }) })
          // belt and braces: the decoder's own count, should the page not composite
          const poll = async () => {
            const stats = await pc.getStats()
            for (const report of stats.values()) {
              if (report.type === 'inbound-rtp' && report.kind === 'video' && report.framesDecoded > 0) {
                resolve({ how: 'getStats', framesDecoded: report.framesDecoded })
                return
              }
            }
            setTimeout(poll, 100)
          }
          void poll()
        })
      }
      return pc
    }

    const applyCandidates = async () => {
      while (queued.length > 0) await pc.addIceCandidate(queued.shift())
    }

    const handle = async (frame: InPage) => {
      if (frame.op === 'hello') {
        send({ op: 'join', room, ref: 'j' })
      } else if (frame.op === 'joined') {
        state.peer = frame.peer
        if (frame.peers.length > 0) {
          // the newcomer offers: media first, then the data channel, then the offer
          connect(frame.peers[0])
          if (video) {
            const stream = await window.navigator.mediaDevices.getUserMedia({ video: true })
            for (const track of stream.getTracks()) pc.addTrack(track, stream)
          }
          const channel = pc.createDataChannel('data')
          channel.onopen = () => { channel.send(`hello from ${state.peer}`) }
          await pc.setLocalDescription(await pc.createOffer())
          send({ op: 'signal', room, to: state.remote, data: pc.localDescription.toJSON() })
        }
        resolve(frame.peer)
      } else if (frame.op === 'signal') {
        state.signalsFrom.push(frame.from)
        if (pc === null) connect(frame.from)
        const data = frame.data
        if (typeof data.type === 'string') {
          await pc.setRemoteDescription(data)
          await applyCandidates()
          if (data.type === 'offer') {
            await pc.setLocalDescription(await pc.createAnswer())
            send({ op: 'signal', room, to: frame.from, data: pc.localDescription.toJSON() })
          }
        } else {
          queued.push(data)
          if (pc.remoteDescription !== null) await applyCandidates()
        }
      } else if (frame.op === 'error') {
        state.errors.push(frame)
        reject(new Error(`${frame.code}: ${frame.message}`))
      }
    }
    // one frame after the other, so a candidate never overtakes the description it belongs to
    ws.onmessage = (m: InPage) => {
      const frame = JSON.parse(m.data)
      chain = chain.then(() => handle(frame)).catch((err) => { state.errors.push(String(err)) })
    }
    ws.onerror = () => { reject(new Error('signaling socket failed')) }
  })
}

t.test('two Chromium contexts meet through /rtc and connect peer to peer: data channel, then a fake camera', async (t) => {
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0], { webrtc: true })
  if (browser === null) return
  t.after(() => browser.close())

  const app = Fastify()
  t.after(() => app.close())
  await app.register(rtcSignalGateway, { closeTimeoutMs: 500 })
  // a blank page of the same origin: the browser's Origin header passes the default same-origin rule
  app.get('/blank', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>rtc test</title><body></body>'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `http://127.0.0.1:${port}`
  const socketUrl = `ws://127.0.0.1:${port}/rtc`

  await t.test('a data channel message sent by page A is read by page B', async (t) => {
    const b = await openPage(browser, `${base}/blank`)
    const a = await openPage(browser, `${base}/blank`)
    const idB = await withTimeout(b.evaluate(pageScript, { url: socketUrl, room: 'public:data', video: false }), 15_000, 'B joined')
    // A joins second: its joined lists B, so A makes the offer and the data channel
    const idA = await withTimeout(a.evaluate(pageScript, { url: socketUrl, room: 'public:data', video: false }), 15_000, 'A joined')
    await b.waitForFunction(() => window.state.messages.length > 0, undefined, { timeout: 20_000 })
    const stateB = await b.evaluate(() => window.state)
    const stateA = await a.evaluate(() => window.state)
    t.same(stateB.messages, [`hello from ${idA}`], 'B read the message A sent peer to peer')
    t.ok(stateB.signalsFrom.length > 0 && stateB.signalsFrom.every((from: string) => from === idA), 'every signal B got carries A\'s id as from')
    t.ok(stateA.signalsFrom.every((from: string) => from === idB), 'every signal A got carries B\'s id as from')
    t.same([stateA.errors, stateB.errors], [[], []])
    t.equal(await a.evaluate(() => window.pc.connectionState), 'connected')
    await a.context().close()
    await b.context().close()
  })

  await t.test('a fake camera track from page A plays on page B', async (t) => {
    const b = await openPage(browser, `${base}/blank`)
    const a = await openPage(browser, `${base}/blank`)
    await withTimeout(b.evaluate(pageScript, { url: socketUrl, room: 'public:video', video: true }), 15_000, 'B joined')
    await withTimeout(a.evaluate(pageScript, { url: socketUrl, room: 'public:video', video: true }), 15_000, 'A joined')
    await b.waitForFunction(() => window.firstFrame !== undefined, undefined, { timeout: 20_000 })
    const frame = await withTimeout(b.evaluate(() => window.firstFrame), 20_000, 'a video frame on B')
    t.ok(frame.how === 'requestVideoFrameCallback' ? frame.width > 0 : frame.framesDecoded > 0, `B received a frame (${JSON.stringify(frame)})`)
    t.same(await b.evaluate(() => window.state.errors), [])
    await a.context().close()
    await b.context().close()
  })
})
