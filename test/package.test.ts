import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// npm pack builds dist/ (prepack) and an install copies the dependency tree: slower than the other files
t.setTimeout(240_000)

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))

t.test('the packed package installs into a host app and its exports load', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fg-pack-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, maxBuffer: 64 * 1024 * 1024 })
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = packed.files.map((f) => f.path)
  t.ok(files.includes('dist/index.js'))
  t.ok(files.includes('dist/index.d.ts'))
  t.notOk(files.some((f) => f.startsWith('test/') || f.startsWith('bench/') || f.startsWith('.ci/')), 'no tests, benches or CI in the package')
  t.notOk(files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources')
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps')

  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }
  const subpaths = Object.keys(pkg.exports).filter((key) => key !== './package.json')
  for (const key of subpaths) {
    const target = (pkg.exports[key] as { import: string }).import.replace(/^\.\//, '')
    t.ok(files.includes(target), `${key} points at a packed file (${target})`)
  }

  const host = join(dir, 'host')
  await mkdir(host)
  await writeFile(join(host, 'package.json'), JSON.stringify({
    name: 'host-app', private: true, type: 'module', dependencies: { 'fastify-gateways': `file:${join(dir, packed.filename)}` }
  }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: host, maxBuffer: 64 * 1024 * 1024 })
  await writeFile(join(host, 'app.mjs'), `
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import * as lib from 'fastify-gateways'
import rooms from 'fastify-gateways/rooms'
const require = createRequire(import.meta.url)
const loaded = (name) => Object.keys(require.cache).some((p) => p.includes('/node_modules/' + name + '/'))
const subpaths = ${JSON.stringify(subpaths.filter((s) => s !== '.' && s !== './client'))}
const modules = {}
for (const sub of subpaths) modules[sub] = Object.keys(await import('fastify-gateways/' + sub.slice(2)))
const app = Fastify()
await app.register(rooms, { historySize: 10 })
await app.ready()
const received = []
app.rooms.join('public:x', { id: app.rooms.nextMemberId(), user: null, transport: 'host', encoder: { name: 'e', encode: (ev) => ev.dataJson }, deliver: (d) => received.push(d) })
const result = app.rooms.publish('public:x', 'hello', { n: 1 })
await app.close()
console.log(JSON.stringify({ root: Object.keys(lib), modules, received, delivered: result.delivered, kafkajs: loaded('kafkajs'), twilioRest: loaded('twilio') && Object.keys(require.cache).some((p) => p.includes('/twilio/lib/rest/')) }))
`)
  const out = await run(process.execPath, ['app.mjs'], { cwd: host })
  const report = JSON.parse(out.stdout) as { root: string[], modules: Record<string, string[]>, received: string[], delivered: number, kafkajs: boolean, twilioRest: boolean }
  t.ok(report.root.includes('rooms'), 'the root exports the rooms plugin')
  t.ok(report.root.includes('RoomRegistry'))
  for (const [sub, names] of Object.entries(report.modules)) t.ok(names.includes('default'), `${sub} has a default export`)
  t.same(report.received, ['{"n":1}'])
  t.equal(report.delivered, 1)
  t.equal(report.kafkajs, false, 'importing every gateway does not load kafkajs')
  t.equal(report.twilioRest, false, 'nor the twilio REST client')
})
