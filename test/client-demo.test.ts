import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { demoRoutes, defaultPublicRoot, DEFAULT_CSP, type DemoRoutesOptions } from '../routes/demo.js'

// GET /, /client.js, /client.d.ts, /demo.js, /demo.css: content types, caching, ETag/304, the page's CSP.

const PUBLIC = new URL('../public/', import.meta.url)
const file = (name: string) => readFileSync(new URL(name, PUBLIC))

async function app (t: Test, options: DemoRoutesOptions = {}, prefix?: string) {
  const server = Fastify()
  t.after(() => server.close())
  await server.register(demoRoutes, { ...options, ...(prefix === undefined ? {} : { prefix }) })
  return server
}

t.test('GET / is the demo page: HTML, revalidated on each load, with a strict Content-Security-Policy', async (t) => {
  const server = await app(t)
  const response = await server.inject('/')
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(response.headers['cache-control'], 'no-cache')
  t.equal(response.headers['content-security-policy'], DEFAULT_CSP)
  t.match(DEFAULT_CSP, /default-src 'self'/)
  t.match(DEFAULT_CSP, /script-src 'self';/)
  t.match(DEFAULT_CSP, /style-src 'self';/)
  t.match(DEFAULT_CSP, /connect-src 'self' ws: wss:/)
  t.match(DEFAULT_CSP, /object-src 'none'/)
  t.match(DEFAULT_CSP, /frame-ancestors 'none'/)
  t.notMatch(DEFAULT_CSP, /unsafe/)
  t.equal(response.headers['x-content-type-options'], 'nosniff')
  t.equal(response.headers['referrer-policy'], 'no-referrer')
  t.match(response.headers.etag, /^"[A-Za-z0-9_-]{27}"$/)
  t.match(response.body, '<script type="module" src="demo.js"></script>')
  t.match(response.body, 'data-ws="/ws" data-sse="/sse" data-rtc="/rtc" data-api="/api"')
})

t.test('the page has nothing inline that a strict CSP would block: no inline script, style or event handler', async (t) => {
  const html = file('index.html').toString('utf8')
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)]
  t.ok(scripts.length > 0)
  for (const [, attributes, body] of scripts) {
    t.match(attributes, /\bsrc="/, 'every script is a file')
    t.equal(body.trim(), '', 'and has no inline body')
  }
  t.notMatch(html, /<style\b/i, 'no style element')
  t.notMatch(html, /\sstyle=/i, 'no style attribute')
  t.notMatch(html, /\son[a-z]+=/i, 'no inline event handler')
  t.notMatch(html, /javascript:/i)
  const demo = file('demo.js').toString('utf8')
  t.notMatch(demo, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/, 'the demo script builds the DOM with textContent')
  t.notMatch(demo, /\.style\./, 'no inline styles set from script either')
  const ids = new Set([...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]))
  const used = [...demo.matchAll(/\$\('([^']+)'\)/g)].map((m) => m[1])
  const templated = [...demo.matchAll(/\$\(`\$\{list\}-([a-z]+)`\)/g)].flatMap((m) => [`ws-${m[1]}`, `sse-${m[1]}`])
  t.ok(used.length > 20)
  t.same([...used, ...templated].filter((id) => !ids.has(id)), [], 'every element the script looks up exists in the page')
})

t.test('the client, its types and the demo assets are served with their content types and a short max-age', async (t) => {
  const server = await app(t)
  for (const [path, type, name] of [
    ['/client.js', 'text/javascript; charset=utf-8', 'client.js'],
    ['/client.d.ts', 'application/typescript; charset=utf-8', 'client.d.ts'],
    ['/demo.js', 'text/javascript; charset=utf-8', 'demo.js'],
    ['/demo.css', 'text/css; charset=utf-8', 'demo.css']
  ]) {
    const response = await server.inject(path)
    t.equal(response.statusCode, 200, path)
    t.equal(response.headers['content-type'], type, path)
    t.equal(response.headers['cache-control'], 'public, max-age=300', path)
    t.equal(response.headers['x-content-type-options'], 'nosniff', path)
    t.notOk(response.headers['content-security-policy'], `${path}: the CSP is the page's`)
    t.ok(response.rawPayload.equals(file(name)), `${path}: the file as it is`)
  }
  t.equal((await server.inject('/favicon.ico')).statusCode, 404, 'nothing else of public/ is served')
  t.equal((await server.inject('/../package.json')).statusCode, 404)
})

t.test('ETag revalidation: If-None-Match with the current tag answers 304 without a body; another tag gets the file', async (t) => {
  const server = await app(t)
  for (const path of ['/', '/client.js']) {
    const first = await server.inject(path)
    const etag = first.headers.etag as string
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const again = await server.inject({ url: path, headers: { 'if-none-match': header } })
      t.equal(again.statusCode, 304, `${path} ${header}`)
      t.equal(again.body, '')
      t.equal(again.headers.etag, etag)
      t.equal(again.headers['cache-control'], first.headers['cache-control'])
    }
    const changed = await server.inject({ url: path, headers: { 'if-none-match': '"stale"' } })
    t.equal(changed.statusCode, 200)
    t.equal(changed.body, first.body)
  }
  const [page, client] = await Promise.all([server.inject('/'), server.inject('/client.js')])
  t.not(page.headers.etag, client.headers.etag, 'each file has its own tag')
  const head = await server.inject({ method: 'HEAD', url: '/client.js' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers.etag, client.headers.etag)
})

t.test('endpoints tell the page where each gateway is; false says that gateway is off', async (t) => {
  const server = await app(t, { endpoints: { ws: '/realtime', sse: false, rtc: 'wss://rtc.example.test/rtc?x="y"', api: false } })
  const body = (await server.inject('/')).body
  t.match(body, 'data-ws="/realtime" data-sse="" data-rtc="wss://rtc.example.test/rtc?x=&quot;y&quot;" data-api=""')
})

t.test('publishRooms tells the page where browsers may publish; unset, the page is not told (no data-publish at all)', async (t) => {
  const told = await app(t, { publishRooms: ['public:demo*', 'chat:"x"'] })
  t.match((await told.inject('/')).body, '<body data-ws="/ws" data-sse="/sse" data-rtc="/rtc" data-api="/api" data-sslcommerz="" data-publish="public:demo*,chat:&quot;x&quot;">')
  const closed = await app(t, { publishRooms: [] })
  t.match((await closed.inject('/')).body, 'data-api="/api" data-sslcommerz="" data-publish="">')
  const untold = await app(t)
  t.notMatch((await untold.inject('/')).body, 'data-publish')
  const bad = Fastify()
  t.after(() => bad.close())
  await t.rejects(async () => { await bad.register(demoRoutes, { publishRooms: [''] }) }, { message: /publishRooms/ })
})

t.test('options: a custom or no CSP, the assets max-age, a root directory; bad options are refused by name', async (t) => {
  const custom = await app(t, { csp: "default-src 'none'", assetMaxAgeS: 0 })
  t.equal((await custom.inject('/')).headers['content-security-policy'], "default-src 'none'")
  t.equal((await custom.inject('/demo.css')).headers['cache-control'], 'public, max-age=0')
  const none = await app(t, { csp: false })
  t.notOk((await none.inject('/')).headers['content-security-policy'])

  const root = mkdtempSync(join(tmpdir(), 'gw-demo-'))
  t.after(() => rmSync(root, { recursive: true, force: true }))
  for (const name of ['index.html', 'client.js', 'client.d.ts', 'demo.js', 'demo.css']) writeFileSync(join(root, name), `custom ${name}`)
  const own = await app(t, { root })
  t.equal((await own.inject('/demo.js')).body, 'custom demo.js')

  const empty = mkdtempSync(join(tmpdir(), 'gw-demo-empty-'))
  t.after(() => rmSync(empty, { recursive: true, force: true }))
  const missing = Fastify()
  t.after(() => missing.close())
  await t.rejects(async () => { await missing.register(demoRoutes, { root: empty }) }, { code: 'GW_INVALID_OPTIONS', message: /root: cannot read index\.html/ })
  const bad = Fastify()
  t.after(() => bad.close())
  await t.rejects(async () => { await bad.register(demoRoutes, { maxAge: 1 } as never) }, { code: 'GW_INVALID_OPTIONS', message: /unknown option "maxAge"/ })
  const badEndpoint = Fastify()
  t.after(() => badEndpoint.close())
  await t.rejects(async () => { await badEndpoint.register(demoRoutes, { endpoints: { ws: 'no slash' } }) }, { message: /endpoints\.ws/ })
})

t.test('a prefix moves the page and its assets (links in the page are relative)', async (t) => {
  const server = await app(t, {}, '/demo')
  t.equal((await server.inject('/demo/')).statusCode, 200)
  t.equal((await server.inject('/demo/demo.js')).statusCode, 200)
  t.equal((await server.inject('/demo.js')).statusCode, 404)
})

t.test('the default root is the package public/ directory (sources and the built dist/ alike)', async (t) => {
  t.equal(defaultPublicRoot(), new URL('../public', import.meta.url).pathname)
})
