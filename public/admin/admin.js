// The admin dashboard of fastify-gateways: a plain ES module, no build step. It polls the JSON API
// (<base>/api/overview and <base>/api/rooms) every `refreshMs` and draws what it gets with textContent only (room
// names and user ids come from clients: never parsed as HTML). Changes (publish) carry the session's CSRF token.

const base = document.body.dataset.base ?? '/admin'
const $ = (id) => document.getElementById(id)

const TRANSPORTS = ['ws', 'sse', 'rtc']
const WEBHOOK_OUTCOMES = ['handled', 'duplicate', 'rejected', 'failed']
const STREAM_OUTCOMES = ['handled', 'retried', 'dead_lettered']

let session = null
let timer = null

class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

async function api (path, init = {}) {
  const res = await fetch(`${base}/api${path}`, { credentials: 'same-origin', cache: 'no-store', ...init })
  if (res.status === 401) {
    // the session ended (expired, logged out elsewhere, server restarted): the page shows the login form again
    window.location.reload()
    throw new ApiError(401, 'logged out')
  }
  const body = res.status === 204 ? null : await res.json().catch(() => null)
  if (!res.ok) throw new ApiError(res.status, body?.message ?? `HTTP ${res.status}`)
  return body
}

function setText (id, value) {
  const el = $(id)
  const text = String(value)
  if (el !== null && el.textContent !== text) el.textContent = text
}

function fmtRate (value) {
  return value >= 100 ? Math.round(value).toLocaleString('en') : value.toFixed(1)
}

function fmtCount (value) {
  return Number(value).toLocaleString('en')
}

function el (tag, attrs = {}, text) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value)
  if (text !== undefined) node.textContent = text
  return node
}

function spark (id, values) {
  const line = document.querySelector(`#${id} polyline`)
  if (line === null) return
  const max = Math.max(1, ...values)
  const step = values.length > 1 ? 120 / (values.length - 1) : 120
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(29 - (v / max) * 27).toFixed(1)}`).join(' ')
  line.setAttribute('points', points)
}

/** A table of rows × columns of counts; rows with only zeros are listed too when `all`, else left out. */
function matrix (headId, bodyId, rows, columns, all) {
  const head = $(headId)
  const body = $(bodyId)
  const headRow = el('tr')
  headRow.append(el('th'))
  for (const column of columns) headRow.append(el('th', { class: 'num' }, column.replace('_', ' ')))
  head.replaceChildren(headRow)
  const out = []
  for (const [name, counts] of Object.entries(rows)) {
    const values = columns.map((c) => counts[c] ?? 0)
    if (!all && values.every((v) => v === 0)) continue
    const tr = el('tr', { 'data-row': name })
    tr.append(el('th', {}, name))
    columns.forEach((column, i) => {
      tr.append(el('td', { class: values[i] === 0 ? 'num zero' : `num ${column}`, 'data-col': column }, fmtCount(values[i])))
    })
    out.push(tr)
  }
  if (out.length === 0) {
    const tr = el('tr')
    tr.append(el('td', { colspan: String(columns.length + 1), class: 'note' }, 'none yet'))
    out.push(tr)
  }
  body.replaceChildren(...out)
}

function drawOverview (o) {
  setText('instance', `instance ${o.instanceId}`)
  const bus = $('bus')
  bus.dataset.state = o.bus.up ? 'up' : 'down'
  setText('bus', `${o.bus.name} bus ${o.bus.up ? 'up' : 'down'}`)
  for (const t of TRANSPORTS) setText(`conn-${t}`, fmtCount(o.connections[t] ?? 0))
  setText('rooms-local', fmtCount(o.localRooms))
  setText('rate-published', fmtRate(o.rates.published))
  setText('rate-delivered', fmtRate(o.rates.delivered))
  setText('rate-by-transport', TRANSPORTS.map((t) => `${t} ${fmtRate(o.rates.deliveries[t] ?? 0)}`).join(' · '))
  spark('spark-published', o.series.published)
  spark('spark-delivered', o.series.delivered)
  matrix('webhooks-head', 'webhooks', o.totals.webhooks, WEBHOOK_OUTCOMES, true)
  matrix('streams-head', 'streams', o.totals.streamMessages, STREAM_OUTCOMES, true)
  const reasons = new Set()
  for (const byReason of Object.values(o.totals.disconnects)) {
    for (const [reason, n] of Object.entries(byReason)) if (n > 0) reasons.add(reason)
  }
  matrix('disconnects-head', 'disconnects', o.totals.disconnects, reasons.size === 0 ? ['client'] : [...reasons], false)
  const list = $('instances')
  if (o.instances === null) {
    list.replaceChildren(el('li', { class: 'self', 'data-instance': o.instanceId }, `${o.instanceId} (this one; a single-instance bus)`))
  } else {
    list.replaceChildren(...o.instances.map((i) => el('li', { class: i.self ? 'self' : '', 'data-instance': i.id }, i.self ? `${i.id} (this one)` : i.id)))
  }
}

function drawRooms (r) {
  setText('rooms-total', fmtCount(r.total))
  const rows = r.rooms.map((room) => {
    const tr = el('tr', { 'data-room': room.room })
    const name = el('td', { class: 'room' })
    const pick = el('button', { type: 'button', class: 'link', title: 'publish to this room' }, room.room)
    pick.addEventListener('click', () => {
      $('publish-room').value = room.room
      $('publish-event').focus()
    })
    name.append(pick)
    tr.append(name, el('td', { class: 'num members' }, fmtCount(room.members)))
    const users = el('td', { class: 'users' })
    for (const user of room.users) users.append(el('span', { class: 'user' }, user))
    if (room.usersTotal > room.users.length) users.append(el('span', { class: 'note' }, ` +${room.usersTotal - room.users.length} more`))
    if (room.usersTotal === 0) users.append(el('span', { class: 'note' }, 'anonymous only'))
    tr.append(users)
    return tr
  })
  $('rooms').replaceChildren(...rows)
  const filter = $('rooms-filter').value
  setText('rooms-note', r.rooms.length === 0
    ? (filter === '' ? 'No room has members right now.' : `No room starts with "${filter}".`)
    : (r.rooms.length < r.total && filter === '' ? `The ${r.rooms.length} largest of ${r.total} rooms.` : ''))
}

async function refresh () {
  const prefix = $('rooms-filter').value.trim()
  const [overview, rooms] = await Promise.all([
    api('/overview'),
    api(`/rooms?limit=100&prefix=${encodeURIComponent(prefix)}`)
  ])
  drawOverview(overview)
  drawRooms(rooms)
}

async function loop () {
  const live = $('live')
  try {
    await refresh()
    live.dataset.state = 'live'
    live.textContent = 'live'
  } catch (err) {
    if (err.status === 401) return
    live.dataset.state = 'error'
    live.textContent = `error: ${err.message}`
  }
  timer = setTimeout(loop, session?.refreshMs ?? 1000)
}

$('publish').addEventListener('submit', async (event) => {
  event.preventDefault()
  const result = $('publish-result')
  result.className = 'message'
  const text = $('publish-data').value.trim()
  let data = null
  if (text !== '') {
    try {
      data = JSON.parse(text)
    } catch (err) {
      result.classList.add('error')
      result.textContent = `data is not JSON: ${err.message}`
      return
    }
  }
  const body = { room: $('publish-room').value.trim(), event: $('publish-event').value.trim(), data }
  try {
    const answer = await api('/publish', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
      body: JSON.stringify(body)
    })
    result.classList.add('ok')
    result.textContent = `Published ${answer.id} to ${body.room}; handed to ${answer.delivered} member(s) on this instance.`
  } catch (err) {
    result.classList.add('error')
    result.textContent = `Not published: ${err.message}`
  }
})

$('rooms-filter').addEventListener('input', () => {
  clearTimeout(timer)
  loop()
})

session = await api('/session')
loop()
