// The live demo page (GET /), built on the browser client. No inline script: the page runs under a strict CSP.
// What the server tells the page sits in <body data-*>: where each gateway is ('' when off) and the globs of
// CLIENT_PUBLISH_ROOMS (data-publish). Sections with data-requires="<name>" show only when that gateway is on.
/* global CSS, sessionStorage, crypto */
import { connect, subscribe, joinRtc } from './client.js'

const $ = (id) => document.getElementById(id)
const MAX_ROWS = 100
const DEMO_ROOM = 'public:demo'
const PRESENCE_EVERY_MS = 3000

const { publish: publishAttribute, ...endpoints } = document.body.dataset
// the gateways' paths (or URLs) against this page's origin
const url = (path) => new URL(path, location.href).href
const on = (name) => typeof endpoints[name] === 'string' && endpoints[name] !== ''

// CLIENT_PUBLISH_ROOMS as the server passed it (undefined: not told, so just try)
const publishGlobs = publishAttribute === undefined ? undefined : publishAttribute.split(',').map((g) => g.trim()).filter(Boolean)
const globToRegExp = (glob) => new RegExp(`^${[...glob].map((ch) => ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')).join('')}$`)
const publishable = (room) => publishGlobs === undefined || publishGlobs.some((glob) => globToRegExp(glob).test(room))

const tabName = (() => {
  // one name per tab, kept across reloads of that tab (sessionStorage is per tab)
  let name = sessionStorage.getItem('gw-demo-tab')
  if (name === null) {
    const bytes = crypto.getRandomValues(new Uint8Array(2))
    name = `tab ${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase()}`
    sessionStorage.setItem('gw-demo-tab', name)
  }
  return name
})()

const token = () => $('token').value.trim() || null
const rooms = [] // joined rooms, in join order
let sse = null
let rtc = null
let localStream = null
let saidHello = false

// ---- small DOM helpers (textContent only: event data is never parsed as HTML) ----

function el (tag, text, className) {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  if (className !== undefined) node.className = className
  return node
}

function note (id, text, kind) {
  const node = $(id)
  node.hidden = text === null
  node.textContent = text ?? ''
  if (kind !== undefined) node.dataset.kind = kind
}

function pill (id, name, state, extra) {
  const node = $(id)
  node.dataset.state = state
  node.textContent = `${name}: ${state}${extra ? ` (${extra})` : ''}`
}

function addEvent (list, data, meta) {
  const ol = $(`${list}-events`)
  const li = el('li', undefined, 'event')
  li.dataset.id = meta.id ?? ''
  li.dataset.room = meta.room ?? ''
  li.dataset.event = meta.event
  const from = data !== null && typeof data === 'object' && typeof data.from === 'string' ? data.from : null
  if (from !== null) li.dataset.from = from
  if (from === tabName) li.classList.add('mine')
  li.append(el('span', meta.id ?? '', 'id'), el('span', meta.room ?? '', 'room'), el('span', meta.event, 'name'),
    el('span', from === null ? '' : from === tabName ? `${from} (this tab)` : `from ${from}`, 'from'),
    el('code', JSON.stringify(data), 'data'))
  ol.prepend(li)
  while (ol.children.length > MAX_ROWS) ol.lastElementChild.remove()
  const count = $(`${list}-count`)
  count.textContent = String(Number(count.textContent) + 1)
  $(`${list}-empty`).hidden = true
}

function addGap (list, gap) {
  const ol = $(`${list}-events`)
  const li = el('li', `gap in ${gap.room ?? 'a room'}: some events after ${gap.since ?? 'the resume point'} are no longer in history`, 'gap')
  ol.prepend(li)
}

// ---- what the server runs ----

$('tab-name').textContent = tabName
document.title = `${tabName} \u00b7 fastify-gateways live demo`
for (const node of document.querySelectorAll('[data-requires]')) node.hidden = !on(node.dataset.requires)
for (const node of document.querySelectorAll('[data-gateway]')) node.dataset.state = on(node.dataset.gateway) ? 'on' : 'off'

function publishHint () {
  if (publishGlobs === undefined) return 'Browsers may publish only to rooms that match CLIENT_PUBLISH_ROOMS.'
  if (publishGlobs.length === 0) {
    return 'Publishing from browsers is closed on this server (CLIENT_PUBLISH_ROOMS is empty): start it with ' +
      'CLIENT_PUBLISH_ROOMS=public:demo* to publish from this page. Events that the server publishes still show up here.'
  }
  return `Browsers may publish to ${publishGlobs.join(', ')} on this server (CLIENT_PUBLISH_ROOMS; set it empty to close it).`
}

$('intro-note').textContent = publishHint()
if (publishGlobs !== undefined && publishGlobs.length === 0) $('publish-note').textContent = publishHint()
$('publish-data').value = JSON.stringify({ from: tabName, text: `Hello from ${tabName}` })

// ---- WebSocket ----

const ws = connect(url(endpoints.ws ?? '/ws'), { token })
ws.on('*', (data, meta) => {
  addEvent('ws', data, meta)
  // a tab that arrives or leaves changes who is in the room
  if (meta.event === 'demo.hello') refreshPresence()
})
ws.onGap((gap) => { addGap('ws', gap) })
ws.onStatus((status, detail) => {
  pill('ws-status', 'ws', status, status === 'reconnecting' ? `retry in ${Math.round(detail.delayMs)} ms` : undefined)
  if (status === 'open') {
    note('ws-note', null)
    $('whoami').textContent = detail.user === null
      ? `Connected as anonymous (connection ${detail.conn}): this tab may join PUBLIC_ROOMS.`
      : `Connected as user ${detail.user} (connection ${detail.conn}): may also join user:${detail.user} and the token's rooms.`
  }
})
ws.onError((err) => {
  if (err.room !== undefined) {
    // a refused join is shown by the room form; a refused rejoin (e.g. another token) drops the room here too
    if (!rooms.includes(err.room)) return
    rooms.splice(rooms.indexOf(err.room), 1)
    renderRooms()
    resubscribe()
  }
  note('ws-note', `${err.code}: ${err.message}`, 'error')
})

// ---- SSE: one stream for every joined room, reopened (resuming from its last id) when the rooms change ----

function resubscribe () {
  const previous = sse
  const sameRooms = previous !== null && previous.rooms.join() === rooms.join()
  previous?.close()
  sse = null
  note('sse-note', null)
  if (!on('sse')) {
    pill('sse-status', 'sse', 'off')
    note('sse-note', 'The sse gateway is not enabled on this server (GATEWAYS).', 'error')
    return
  }
  if (rooms.length === 0) {
    pill('sse-status', 'sse', 'idle')
    return
  }
  // an id resumes the stream it came from: only a stream of the same rooms starts from it
  const lastEventId = sameRooms ? previous.lastEventId ?? undefined : undefined
  // fetch transport: it can list every event name (EventSource only dispatches names it was told)
  const stream = subscribe(url(endpoints.sse), rooms, { transport: 'fetch', token, lastEventId })
  stream.on('*', (data, meta) => { addEvent('sse', data, meta) })
  stream.onGap((gap) => { addGap('sse', gap) })
  stream.onStatus((status, detail) => {
    if (stream !== sse) return
    pill('sse-status', 'sse', status, status === 'reconnecting' ? `retry in ${Math.round(detail.delayMs)} ms` : undefined)
  })
  stream.onError((err) => {
    if (stream === sse) note('sse-note', `${err.code}: ${err.message}`, 'error')
  })
  sse = stream
}

// ---- rooms ----

function renderRooms () {
  const list = $('room-list')
  list.replaceChildren(...rooms.map((room) => {
    const li = el('li', undefined, 'chip')
    li.dataset.room = room
    const button = el('button', '\u00d7', 'leave')
    button.type = 'button'
    button.title = `leave ${room}`
    button.addEventListener('click', () => { leaveRoom(room) })
    li.append(el('span', room), button)
    return li
  }))
}

async function joinRoom (room) {
  note('room-note', null)
  if (rooms.includes(room)) return false
  try {
    await ws.join(room)
  } catch (err) {
    note('room-note', `${room}: ${err.code}: ${err.message}`, 'error')
    return false
  }
  rooms.push(room)
  renderRooms()
  resubscribe()
  refreshPresence()
  return true
}

async function leaveRoom (room) {
  const index = rooms.indexOf(room)
  if (index === -1) return
  rooms.splice(index, 1)
  renderRooms()
  resubscribe()
  try {
    await ws.leave(room)
  } catch (err) {
    note('room-note', `${room}: ${err.code}: ${err.message}`, 'error')
  }
  refreshPresence()
}

$('room-form').addEventListener('submit', (e) => {
  e.preventDefault()
  joinRoom($('room-input').value.trim())
})

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  ws.reconnect()
  resubscribe()
})

// ---- publish ----

function result (text, kind) {
  const node = $('publish-result')
  node.hidden = false
  node.dataset.kind = kind
  node.textContent = text
}

$('publish-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  let data
  try {
    const text = $('publish-data').value.trim()
    data = text === '' ? null : JSON.parse(text)
  } catch (err) {
    result(`The data is not JSON: ${err.message}`, 'error')
    return
  }
  const room = $('publish-room').value.trim()
  const event = $('publish-event').value.trim()
  result('Publishing\u2026', 'pending')
  try {
    const { id } = await ws.publish(room, event, data)
    result(`Published to ${room}: ack id ${id}`, 'ok')
  } catch (err) {
    result(`${err.code}: ${err.message}${err.code === 'FORBIDDEN' ? `. ${publishHint()}` : ''}`, 'error')
  }
})

/** Once per page load: tell the other tabs this one is here (only where browsers may publish). */
async function sayHello () {
  if (saidHello || !publishable(DEMO_ROOM)) return
  saidHello = true
  try {
    await ws.publish(DEMO_ROOM, 'demo.hello', { from: tabName, text: `${tabName} opened the page` })
  } catch (err) {
    if (err.code !== 'CLOSED') note('ws-note', `${err.code}: ${err.message}`, 'error')
  }
}

if (on('api')) {
  $('curl-snippet').textContent = [
    `curl -X POST ${url(endpoints.api)}/rooms/${DEMO_ROOM}/events \\`,
    '  -H "authorization: Bearer <key>" -H "content-type: application/json" \\',
    '  -d \'{"event":"demo.message","data":{"from":"curl","text":"hello from curl"}}\''
  ].join('\n')
}

// ---- presence: the ws presence op, for the rooms this tab joined ----

let presenceTimer = null
let presenceRunning = false

async function refreshPresence () {
  clearTimeout(presenceTimer)
  presenceTimer = null
  if (presenceRunning) return
  presenceRunning = true
  try {
    const rows = []
    for (const room of [...rooms]) {
      try {
        rows.push(await ws.presence(room))
      } catch (err) {
        // a room left meanwhile, or a reconnect in progress: the next round asks again
        if (err.code !== 'FORBIDDEN' && err.code !== 'DISCONNECTED' && err.code !== 'CLOSED') {
          rows.push({ room, error: `${err.code}: ${err.message}` })
        }
      }
    }
    $('presence-rows').replaceChildren(...rows.map((row) => {
      const tr = el('tr')
      tr.dataset.room = row.room
      if (row.error !== undefined) {
        tr.append(el('td', row.room), el('td', row.error), el('td', ''))
        return tr
      }
      tr.dataset.members = String(row.members)
      tr.append(el('td', row.room), el('td', String(row.members)), el('td', row.users.length === 0 ? 'none (anonymous)' : row.users.join(', ')))
      return tr
    }))
    $('presence-table').hidden = rows.length === 0
  } finally {
    presenceRunning = false
    if (ws.status !== 'closed') presenceTimer = setTimeout(refreshPresence, PRESENCE_EVERY_MS)
  }
}

// ---- WebRTC: two tabs, one call room ----

function rtcLog (text, kind) {
  const ol = $('rtc-log')
  ol.prepend(el('li', text, kind))
  while (ol.children.length > MAX_ROWS) ol.lastElementChild.remove()
}

function renderPeers () {
  if (rtc !== null && rtc.peerId !== null) {
    const others = rtc.peers.size
    $('rtc-info').textContent = `In ${rtc.room} as peer ${rtc.peerId}: ${others === 0 ? 'waiting for another tab to join' : `${others} peer(s)`}.`
  }
  $('rtc-peers').replaceChildren(...[...(rtc?.peers.values() ?? [])].map((peer) => {
    const li = el('li', `${peer.id}: ${peer.pc.connectionState}${peer.channel?.readyState === 'open' ? ', data open' : ''}`, 'chip')
    li.dataset.peer = peer.id
    li.dataset.state = peer.pc.connectionState
    return li
  }))
}

function video (id, stream, muted) {
  let node = document.querySelector(`video[data-peer="${CSS.escape(id)}"]`)
  if (node === null) {
    node = el('video')
    node.dataset.peer = id
    node.autoplay = true
    node.playsInline = true
    node.muted = muted
    $('rtc-videos').append(node)
  }
  if (node.srcObject !== stream) node.srcObject = stream
}

function setRtcUi (joined) {
  $('rtc-join').disabled = joined
  $('rtc-leave').disabled = !joined
  $('rtc-message').disabled = !joined
  $('rtc-send').disabled = !joined
  $('rtc-room').disabled = joined
}

async function startCamera () {
  if (localStream !== null) return localStream
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false })
  } catch (err) {
    rtcLog(`camera unavailable: ${err.message}`, 'error')
    $('rtc-camera').checked = false
    return null
  }
  video('me', localStream, true)
  return localStream
}

function stopCamera () {
  if (localStream === null) return
  rtc?.removeStream(localStream)
  for (const track of localStream.getTracks()) track.stop()
  localStream = null
  document.querySelector('video[data-peer="me"]')?.remove()
}

$('rtc-camera').addEventListener('change', async () => {
  if (!$('rtc-camera').checked) {
    stopCamera()
    return
  }
  const stream = await startCamera()
  if (stream !== null && rtc !== null) rtc.addStream(stream)
})

$('rtc-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  if (rtc !== null || !on('rtc')) return
  const room = $('rtc-room').value.trim()
  const stream = $('rtc-camera').checked ? await startCamera() : null
  const session = joinRtc(url(endpoints.rtc), room, { token, ...(stream === null ? {} : { stream }) })
  rtc = session
  setRtcUi(true)
  pill('rtc-status', 'rtc', 'connecting')
  session.on('joined', () => {
    pill('rtc-status', 'rtc', 'open')
    renderPeers()
  })
  session.on('peer', (peer) => {
    rtcLog(`peer ${peer.id} is connecting`)
    renderPeers()
  })
  session.on('state', renderPeers)
  session.on('channel', (channel, peer) => {
    rtcLog(`data channel with ${peer.id} is open`, 'ok')
    renderPeers()
  })
  session.on('message', (data, peer) => { rtcLog(`${peer.id}: ${data}`, 'message') })
  session.on('track', (_track, streams, peer) => { if (streams[0]) video(peer.id, streams[0], true) })
  session.on('peer-left', (peer) => {
    rtcLog(`peer ${peer.id} left`)
    document.querySelector(`video[data-peer="${CSS.escape(peer.id)}"]`)?.remove()
    renderPeers()
  })
  session.on('error', (err) => { rtcLog(`${err.code}: ${err.message}`, 'error') })
  session.on('close', ({ code }) => {
    if (rtc !== session) return
    pill('rtc-status', 'rtc', 'closed', `code ${code}`)
  })
  try {
    await session.ready
  } catch (err) {
    if (rtc === session) leaveCall(`${err.code}: ${err.message}`)
  }
})

function leaveCall (reason) {
  const session = rtc
  rtc = null
  session?.close()
  setRtcUi(false)
  pill('rtc-status', 'rtc', 'idle')
  $('rtc-info').textContent = reason ?? 'Not in a call.'
  for (const node of document.querySelectorAll('#rtc-videos video:not([data-peer="me"])')) node.remove()
  renderPeers()
}

$('rtc-leave').addEventListener('click', () => { leaveCall() })

$('rtc-send-form').addEventListener('submit', (e) => {
  e.preventDefault()
  if (rtc === null) return
  const text = $('rtc-message').value
  const count = rtc.send(text)
  rtcLog(count === 0 ? `not sent (no open data channel yet): ${text}` : `me \u2192 ${count} peer(s): ${text}`, count === 0 ? 'error' : 'mine')
})

// ---- sslcommerz demo (payments): one block, on when the server passes the sslcommerz endpoint (sandbox only) ----

const SSLCOMMERZ_PENDING = 'fastify-gateways:sslcommerz'

function sslcommerzDemo () {
  const pending = JSON.parse(sessionStorage.getItem(SSLCOMMERZ_PENDING) ?? 'null')
  if (pending !== null) {
    // back from SSLCommerz: the payment's event was published while the page was away; resume its room from before
    sessionStorage.removeItem(SSLCOMMERZ_PENDING)
    const outcome = new window.URLSearchParams(location.search).get('payment') ?? 'returned'
    note('sslcommerz-note', `Payment ${pending.tranId}: ${outcome}. Waiting for its event\u2026`)
    ws.on('*', (data, meta) => {
      if (!meta.event.startsWith('sslcommerz.') || data?.tran_id !== pending.tranId) return
      $('sslcommerz-note').dataset.event = meta.event
      note('sslcommerz-note', `Payment ${pending.tranId}: ${meta.event} (amount ${data.amount} ${data.currency ?? ''})`,
        meta.event === 'sslcommerz.valid' ? 'ok' : 'error')
    }, { room: pending.room })
    ws.join(pending.room, { since: pending.since }).catch((err) => { note('sslcommerz-note', `${err.code}: ${err.message}`, 'error') })
  }
  $('sslcommerz-pay').addEventListener('click', async () => {
    $('sslcommerz-pay').disabled = true
    try {
      const res = await fetch(url(`${endpoints.sslcommerz}/checkout`), { method: 'POST' })
      const checkout = await res.json()
      if (!res.ok) throw new Error(checkout.message ?? `HTTP ${res.status}`)
      sessionStorage.setItem(SSLCOMMERZ_PENDING, JSON.stringify(checkout))
      location.assign(checkout.url)
    } catch (err) {
      $('sslcommerz-pay').disabled = false
      note('sslcommerz-note', `Could not open a payment: ${err.message}`, 'error')
    }
  })
}

if (on('sslcommerz')) sslcommerzDemo()

// ---- /sslcommerz demo ----

// ---- start: join the demo room on ws and sse, then say hello to the other tabs ----

/** Resolves once `stream` is open (so this tab's SSE column sees its own hello too), or after `ms` regardless. */
function opened (stream, ms) {
  return new Promise((resolve) => {
    if (stream === null || stream.status === 'open') return resolve()
    const timer = setTimeout(done, ms)
    const off = stream.onStatus((status) => { if (status === 'open' || status === 'closed') done() })
    function done () {
      clearTimeout(timer)
      off()
      resolve()
    }
  })
}

if (!on('rtc')) pill('rtc-status', 'rtc', 'off')
if (await joinRoom(DEMO_ROOM)) {
  await opened(sse, 5000)
  sayHello()
}
