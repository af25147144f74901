// The live demo page (GET /), built on the browser client. No inline script: the page runs under a strict CSP.
/* global CSS */
import { connect, subscribe, joinRtc } from './client.js'

const $ = (id) => document.getElementById(id)
const MAX_ROWS = 100
const PUBLISH_HINT = 'Browsers may publish only to rooms of CLIENT_PUBLISH_ROOMS (empty by default): start the server with CLIENT_PUBLISH_ROOMS=public:* to publish from this page.'

const endpoints = {
  ws: document.body.dataset.ws ?? '/ws',
  sse: document.body.dataset.sse ?? '/sse',
  rtc: document.body.dataset.rtc ?? '/rtc',
  api: document.body.dataset.api ?? '/api'
}
// the gateways' paths (or URLs) against this page's origin
const url = (path) => new URL(path, location.href).href

const token = () => $('token').value.trim() || null
const rooms = [] // joined rooms, in join order
let sse = null
let rtc = null
let localStream = null

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
  li.append(el('span', meta.id ?? '', 'id'), el('span', meta.room ?? '', 'room'), el('span', meta.event, 'name'),
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

// ---- WebSocket ----

const ws = connect(url(endpoints.ws), { token })
ws.on('*', (data, meta) => { addEvent('ws', data, meta) })
ws.onGap((gap) => { addGap('ws', gap) })
ws.onStatus((status, detail) => {
  pill('ws-status', 'ws', status, status === 'reconnecting' ? `retry in ${Math.round(detail.delayMs)} ms` : undefined)
  if (status === 'open') {
    note('ws-note', null)
    $('whoami').textContent = detail.user === null
      ? `Connected as anonymous (connection ${detail.conn}): PUBLIC_ROOMS only.`
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
  const lastEventId = previous?.lastEventId ?? undefined
  previous?.close()
  sse = null
  note('sse-note', null)
  if (endpoints.sse === '') {
    pill('sse-status', 'sse', 'off')
    note('sse-note', 'The sse gateway is not enabled on this server (GATEWAYS).', 'error')
    return
  }
  if (rooms.length === 0) {
    pill('sse-status', 'sse', 'idle')
    return
  }
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
  if (rooms.includes(room)) return
  try {
    await ws.join(room)
  } catch (err) {
    note('room-note', `${room}: ${err.code}: ${err.message}`, 'error')
    return
  }
  rooms.push(room)
  renderRooms()
  resubscribe()
  refreshPresence()
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
    result(`${err.code}: ${err.message}${err.code === 'FORBIDDEN' ? `. ${PUBLISH_HINT}` : ''}`, 'error')
  }
})

$('curl-snippet').textContent = [
  `curl -X POST ${url(endpoints.api || '/api')}/rooms/public:demo/events \\`,
  '  -H "authorization: Bearer <key>" -H "content-type: application/json" \\',
  '  -d \'{"event":"demo.message","data":{"text":"hello from curl"}}\''
].join('\n')

// ---- presence (external API, needs a key) ----

let presenceTimer = null

async function refreshPresence () {
  const key = $('api-key').value.trim()
  clearTimeout(presenceTimer)
  if (key === '' || rooms.length === 0) return
  if (endpoints.api === '') {
    note('presence-note', 'The external gateway is not enabled on this server, so presence is not available here.')
    return
  }
  const rows = []
  for (const room of rooms) {
    let response
    try {
      response = await fetch(`${url(endpoints.api)}/rooms/${encodeURIComponent(room)}`, { headers: { authorization: `Bearer ${key}` } })
    } catch (err) {
      note('presence-note', `Presence unavailable: ${err.message}`)
      return
    }
    if (response.status === 404) {
      note('presence-note', 'The external gateway is not enabled on this server (GET /api/rooms/:room answered 404).')
      return
    }
    if (response.status === 401) {
      note('presence-note', 'The API key was refused (401).')
      return
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}))
      rows.push([room, `${response.status}`, body.message ?? ''])
      continue
    }
    const body = await response.json()
    rows.push([room, String(body.members), (body.users ?? []).join(', ')])
  }
  $('presence-rows').replaceChildren(...rows.map((cells) => {
    const tr = el('tr')
    tr.append(...cells.map((cell) => el('td', cell)))
    return tr
  }))
  $('presence-table').hidden = false
  note('presence-note', `Counts of ${new Date().toLocaleTimeString()}, every transport; refreshed every 5 s.`)
  presenceTimer = setTimeout(refreshPresence, 5000)
}

$('presence-form').addEventListener('submit', (e) => {
  e.preventDefault()
  refreshPresence()
})

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
  if (rtc !== null) return
  if (endpoints.rtc === '') {
    rtcLog('The rtc gateway is not enabled on this server (GATEWAYS).', 'error')
    return
  }
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

// ---- sslcommerz demo (payments): one block; on only when the server has the sslcommerz gateway (sandbox) ----

const SSLCOMMERZ_PENDING = 'fastify-gateways:sslcommerz'

async function sslcommerzDemo () {
  let info
  try {
    const res = await fetch(url('/demo/sslcommerz'))
    if (!res.ok) return
    info = await res.json()
  } catch {
    return
  }
  $('sslcommerz').hidden = false
  const pending = JSON.parse(window.sessionStorage.getItem(SSLCOMMERZ_PENDING) ?? 'null')
  if (pending !== null) {
    // back from SSLCommerz: the payment's event was published while the page was away; resume the room from before
    window.sessionStorage.removeItem(SSLCOMMERZ_PENDING)
    const outcome = new window.URLSearchParams(location.search).get('payment') ?? 'returned'
    note('sslcommerz-note', `Payment ${pending.tranId}: ${outcome}. Waiting for its event\u2026`)
    ws.on('*', (data, meta) => {
      if (meta.event.startsWith('sslcommerz.') && data?.tran_id === pending.tranId) {
        const node = $('sslcommerz-note')
        node.dataset.event = meta.event
        note('sslcommerz-note', `Payment ${pending.tranId}: ${meta.event} (amount ${data.amount} ${data.currency ?? ''})`, meta.event === 'sslcommerz.valid' ? 'ok' : 'error')
      }
    }, { room: info.room })
    ws.join(info.room, { since: pending.since }).catch((err) => { note('sslcommerz-note', `${err.code}: ${err.message}`, 'error') })
  }
  $('sslcommerz-pay').addEventListener('click', async () => {
    $('sslcommerz-pay').disabled = true
    try {
      const res = await fetch(url('/demo/sslcommerz/checkout'), { method: 'POST' })
      const checkout = await res.json()
      if (!res.ok) throw new Error(checkout.message ?? `HTTP ${res.status}`)
      window.sessionStorage.setItem(SSLCOMMERZ_PENDING, JSON.stringify(checkout))
      location.assign(checkout.url)
    } catch (err) {
      $('sslcommerz-pay').disabled = false
      note('sslcommerz-note', `Could not open a payment: ${err.message}`, 'error')
    }
  })
}

// ---- /sslcommerz demo ----

// ---- start ----

if (endpoints.rtc === '') pill('rtc-status', 'rtc', 'off')
if (endpoints.api === '') note('presence-note', 'Presence needs the external gateway (GET /api/rooms/:room with an API key), which is not enabled on this server: GATEWAYS=ws,sse,rtc,external EXTERNAL_API_KEYS=demo=<key>.')
joinRoom('public:demo')
sslcommerzDemo()
