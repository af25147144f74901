import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { launchChromium, openPage, withTimeout } from './helpers/chromium.js'
import { startCoturn } from './helpers/coturn.js'
import { until } from './helpers/redis.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- values of the browser page (globals, WebRTC objects and events) the scripts run in
type InPage = any
declare const window: InPage

/**
 * server.ts's app hands out TURN REST credentials (`GET /rtc/ice-servers`) that a real coturn, started here with the
 * same `static-auth-secret`, accepts: two Chromium contexts forced to relay (`iceTransportPolicy: 'relay'`) signal
 * through the app's `/rtc` and exchange a data channel message through coturn's relays. Credentials signed with any
 * other secret are refused by coturn.
 */

const SECRET = `turn-secret-${randomBytes(8).toString('hex')}`

/**
 * The whole client of one page: fetch the ICE servers from the app (Bearer token), join `room` on `/rtc`, and, as the
 * newcomer (its `joined` lists a peer), offer a data channel; remote candidates wait for the remote description.
 * Resolves with the page's peer id once joined; `window.state` collects candidates, messages and errors.
 */
function peerScript ({ socketUrl, token, room }: { socketUrl: string, token: string, room: string }): Promise<string> {
  const state: InPage = { peer: null, ice: null, localTypes: [], messages: [], errors: [] }
  window.state = state
  return (async () => {
    const response = await window.fetch('/rtc/ice-servers', { headers: { authorization: `Bearer ${token}` } })
    state.ice = await response.json()
    return await new Promise<string>((resolve, reject) => {
      const ws = new window.WebSocket(`${socketUrl}?token=${encodeURIComponent(token)}`)
      const send = (frame: unknown) => { ws.send(JSON.stringify(frame)) }
      let pc: InPage = null
      let remote: string | null = null
      const queued: unknown[] = []
      let chain = Promise.resolve()
      const connect = (to: string) => {
        remote = to
        pc = new window.RTCPeerConnection({ iceServers: state.ice, iceTransportPolicy: 'relay' })
        window.pc = pc
        pc.onicecandidate = (e: InPage) => {
          if (e.candidate === null) return
          state.localTypes.push(e.candidate.type)
          send({ op: 'signal', room, to: remote, data: e.candidate.toJSON() })
        }
        pc.onicecandidateerror = (e: InPage) => { state.errors.push(`icecandidateerror ${e.errorCode} ${e.errorText}`) }
        pc.ondatachannel = (e: InPage) => {
          e.channel.onmessage = (m: InPage) => { state.messages.push(m.data) }
        }
      }
      const applyCandidates = async () => {
        while (queued.length > 0) await pc.addIceCandidate(queued.shift())
      }
      const handle = async (frame: InPage) => {
        if (frame.op === 'hello') {
          send({ op: 'join', room })
        } else if (frame.op === 'joined') {
          state.peer = frame.peer
          if (frame.peers.length > 0) {
            connect(frame.peers[0])
            const channel = pc.createDataChannel('data')
            channel.onopen = () => { channel.send(`hello through TURN from ${state.peer}`) }
            await pc.setLocalDescription(await pc.createOffer())
            send({ op: 'signal', room, to: remote, data: pc.localDescription.toJSON() })
          }
          resolve(frame.peer)
        } else if (frame.op === 'signal') {
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
          state.errors.push(`${frame.code}: ${frame.message}`)
          reject(new Error(`${frame.code}: ${frame.message}`))
        }
      }
      ws.onmessage = (m: InPage) => {
        const frame = JSON.parse(m.data)
        chain = chain.then(() => handle(frame)).catch((err) => { state.errors.push(String(err)) })
      }
      ws.onerror = () => { reject(new Error('signaling socket failed')) }
    })
  })()
}

/** The selected candidate pair of `window.pc`, from getStats (the transport's selectedCandidatePairId). */
async function selectedPair (): Promise<InPage> {
  const stats = await window.pc.getStats()
  let pair: InPage = null
  for (const report of stats.values()) {
    if (report.type === 'transport' && report.selectedCandidatePairId !== undefined) pair = stats.get(report.selectedCandidatePairId)
  }
  if (pair === null || pair === undefined) return null
  const local = stats.get(pair.localCandidateId)
  const remote = stats.get(pair.remoteCandidateId)
  return {
    state: pair.state,
    local: { type: local.candidateType, address: local.address, port: local.port, url: local.url, relayProtocol: local.relayProtocol },
    remote: { type: remote.candidateType, address: remote.address, port: remote.port }
  }
}

/**
 * Gathers candidates for a data-channel offer with only the given TURN server, relay only; resolves once gathering is
 * complete with the candidate types and the icecandidateerror codes seen.
 */
function gatherRelay (iceServer: { urls: string[], username: string, credential: string }): Promise<{ types: string[], errorCodes: number[] }> {
  return new Promise((resolve, reject) => {
    const pc = new window.RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: 'relay' })
    const types: string[] = []
    const errorCodes: number[] = []
    pc.onicecandidate = (e: InPage) => { if (e.candidate !== null) types.push(e.candidate.type) }
    pc.onicecandidateerror = (e: InPage) => { errorCodes.push(e.errorCode) }
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.close()
        resolve({ types, errorCodes })
      }
    }
    pc.createDataChannel('probe')
    pc.createOffer().then((offer: unknown) => pc.setLocalDescription(offer)).catch(reject)
  })
}

t.test('TURN credentials from /rtc/ice-servers are accepted by a real coturn', async (t) => {
  const turn = await startCoturn(t, SECRET)
  if (turn === null) return
  const browser = await launchChromium(t as unknown as Parameters<typeof launchChromium>[0], { webrtc: true })
  if (browser === null) return
  t.after(() => browser.close())

  const { app } = await buildTestApp({
    GATEWAYS: 'rtc',
    AUTH_JWT_SECRET: JWT_SECRET,
    RTC_TURN_URLS: turn.url,
    RTC_TURN_SECRET: SECRET,
    RTC_TURN_TTL_S: '600',
    LOG_LEVEL: 'warn'
  })
  // registered after browser.close: runs first, before the browser is gone (t.after is last-registered-first)
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `http://127.0.0.1:${port}`
  const socketUrl = `ws://127.0.0.1:${port}/rtc`

  await t.test('two pages forced to relay connect through coturn and exchange a data channel message', async (t) => {
    const b = await openPage(browser, `${base}/health`)
    const a = await openPage(browser, `${base}/health`)
    t.teardown(async () => {
      await a.context().close()
      await b.context().close()
    })
    const [tokenA, tokenB] = [await signToken('alice'), await signToken('bob')]
    const idB = await withTimeout(b.evaluate(peerScript, { socketUrl, token: tokenB, room: 'public:turn' }), 15_000, 'B joined')
    const idA = await withTimeout(a.evaluate(peerScript, { socketUrl, token: tokenA, room: 'public:turn' }), 15_000, 'A joined')

    // what the app served: one TURN entry with a REST username for each user and its HMAC-SHA1 password
    const iceA = await a.evaluate(() => window.state.ice)
    t.equal(iceA.length, 1)
    t.same(iceA[0].urls, [turn.url])
    t.match(iceA[0].username, /^\d+:alice$/)
    const expiry = Number(iceA[0].username.split(':')[0])
    t.ok(expiry > Date.now() / 1000 && expiry <= Date.now() / 1000 + 600 + 1, 'the username carries an expiry within RTC_TURN_TTL_S')
    t.equal(iceA[0].credential, createHmac('sha1', SECRET).update(iceA[0].username).digest('base64'), 'credential is base64 HMAC-SHA1(secret, username)')
    const iceB = await b.evaluate(() => window.state.ice)
    t.match(iceB[0].username, /^\d+:bob$/)

    await b.waitForFunction(() => window.state.messages.length > 0, undefined, { timeout: 30_000 })
    t.same(await b.evaluate(() => window.state.messages), [`hello through TURN from ${idA}`], 'B read A\'s message')
    t.not(idA, idB)

    for (const [name, page] of [['A', a], ['B', b]] as const) {
      const state = await page.evaluate(() => window.state)
      t.same(state.errors, [], `${name}: no signaling or ICE errors`)
      t.ok(state.localTypes.length > 0 && state.localTypes.every((type: string) => type === 'relay'), `${name} gathered only relay candidates (${state.localTypes.join(',')})`)
      const pair = await page.evaluate(selectedPair)
      t.ok(pair !== null, `${name} has a selected candidate pair`)
      t.equal(pair.local.type, 'relay', `${name}'s selected local candidate is a coturn relay`)
      t.equal(pair.local.address, '127.0.0.1')
      t.match(pair.local.url, `127.0.0.1:${turn.port}`, `${name}'s relay was allocated on our coturn`)
      t.equal(pair.remote.type, 'relay', `${name}'s selected remote candidate is the other page's relay`)
    }

    // coturn logged a successful ALLOCATE for each username the app issued
    for (const username of [iceA[0].username, iceB[0].username]) {
      await until(() => allocatedFor(turn.log(), username), 5000, `coturn to log the ALLOCATE of ${username}`)
      t.ok(allocatedFor(turn.log(), username), `coturn logged a successful ALLOCATE for ${username}`)
    }
  })

  await t.test('a credential signed with another secret is refused by coturn: no relay candidate', async (t) => {
    const page = await openPage(browser, `${base}/health`)
    t.teardown(() => page.context().close())
    const expiry = Math.floor(Date.now() / 1000) + 600
    const username = `${expiry}:mallory`
    const forged = { urls: [turn.url], username, credential: createHmac('sha1', 'another-secret').update(username).digest('base64') }
    const refused = await withTimeout(page.evaluate(gatherRelay, forged), 30_000, 'gathering with a forged credential')
    t.same(refused.types, [], 'no relay candidate with the forged credential')
    t.ok(refused.errorCodes.includes(401), `Chromium reports 401 from the TURN server (${refused.errorCodes.join(',')})`)
    await until(() => unauthorizedFor(turn.log(), username), 5000, 'coturn to log the refusal')
    t.ok(unauthorizedFor(turn.log(), username), 'coturn logged a 401 for the forged username')
    t.notOk(allocatedFor(turn.log(), username), 'coturn allocated nothing for the forged username')

    // the same user and code with the right secret does get a relay: the secret made the difference
    const signed = { ...forged, credential: createHmac('sha1', SECRET).update(username).digest('base64') }
    const accepted = await withTimeout(page.evaluate(gatherRelay, signed), 30_000, 'gathering with a valid credential')
    t.ok(accepted.types.includes('relay'), `a relay candidate with the valid credential (${accepted.types.join(',')})`)
  })
})

function allocatedFor (log: string, username: string): boolean {
  return log.split('\n').some((line) => line.includes(`user <${username}>`) && /ALLOCATE processed, success/.test(line))
}

function unauthorizedFor (log: string, username: string): boolean {
  return log.split('\n').some((line) => line.includes(`user <${username}>`) && line.includes('error 401'))
}
