import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, mkdir, readdir, stat } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// The package as a user gets it: `npm pack` (which builds dist/), installed into a host app that depends on nothing
// but fastify, offline from the npm cache. The host then runs the ws gateway for real, loads the package with
// require(), registers an SDK gateway without its SDK, and type-checks against the shipped declarations with
// skipLibCheck off. Slower than the other files (a build, an install and a type check).
t.setTimeout(300_000)

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const big = { maxBuffer: 64 * 1024 * 1024 }
const SDKS = ['stripe', 'twilio', 'kafkajs', 'ioredis', 'mqtt', 'nats']
/** subpaths whose declarations must compile in a host without any optional SDK */
const SDK_FREE_SUBPATHS = ['.', './rooms', './ws', './sse', './rtc-signal', './external', './demo', './client']

interface Packed { filename: string, files: Array<{ path: string }> }
interface Pkg {
  exports: Record<string, string | { types: string, default: string }>
  bin: Record<string, string>
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}

const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Pkg
const dir = await mkdtemp(join(tmpdir(), 'fg-pack-'))
t.after(() => rm(dir, { recursive: true, force: true }))
const host = join(dir, 'host')

t.test('the package declares its SDKs as optional peers and ships what its exports name', async (t) => {
  for (const sdk of ['stripe', 'twilio', 'kafkajs', 'ioredis']) {
    t.ok(pkg.peerDependencies[sdk], `${sdk} is a peer dependency`)
    t.equal(pkg.peerDependenciesMeta[sdk]?.optional, true, `${sdk} is optional`)
    t.notOk(pkg.dependencies[sdk], `${sdk} is not a dependency`)
    t.ok(pkg.devDependencies[sdk], `${sdk} is installed for the tests`)
  }
  t.notOk(pkg.dependencies['@fastify/static'], 'no unused dependency')
  t.notOk(pkg.dependencies.standardwebhooks, 'standardwebhooks is only used by tests')

  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, ...big })
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[]
  const files = packed.files.map((f) => f.path)
  t.ok(files.includes('LICENSE'))
  t.ok(files.includes('dist/server.js'), 'the server is built')
  t.notOk(files.some((f) => f.startsWith('test/') || f.startsWith('bench/') || f.startsWith('.ci/') || f.startsWith('examples/')), 'no tests, benches, examples or CI in the package')
  t.notOk(files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources')
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps')
  const mapped: string[] = []
  for (const file of files.filter((f) => f.endsWith('.js'))) {
    if ((await readFile(join(root, file), 'utf8')).includes('sourceMappingURL')) mapped.push(file)
  }
  t.same(mapped, [], 'no sourceMappingURL line points at a map that is not shipped')
  for (const [key, target] of Object.entries(pkg.exports)) {
    const targets = typeof target === 'string' ? [target] : [target.types, target.default]
    for (const path of targets) t.ok(files.includes(path.replace(/^\.\//, '')), `${key} points at a packed file (${path})`)
    if (typeof target !== 'string') t.same(Object.keys(target), ['types', 'default'], `${key}: types first, then a default condition (import and require)`)
  }
  for (const path of Object.values(pkg.bin)) t.ok(files.includes(path.replace(/^\.\//, '')), `the bin ${path} is packed`)

  await mkdir(host)
  await writeFile(join(host, 'package.json'), JSON.stringify({
    name: 'host-app',
    private: true,
    type: 'module',
    dependencies: { fastify: pkg.devDependencies.fastify, 'fastify-gateways': `file:${join(dir, packed.filename)}` }
  }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: host, ...big })
  for (const sdk of SDKS) t.notOk(existsSync(join(host, 'node_modules', sdk)), `${sdk} was not installed`)
  t.notOk(existsSync(join(host, 'node_modules', '@types')), 'no type package was installed')
  t.comment(`installed size of a host with fastify and fastify-gateways: ${(await du(join(host, 'node_modules')) / 1024 / 1024).toFixed(1)} MiB`)
})

t.test('in the host: the ws gateway round-trips an event, the root loads no SDK, an SDK gateway without its SDK fails at register', async (t) => {
  t.ok(existsSync(join(host, 'node_modules', 'fastify-gateways')), 'installed by the previous test')
  await writeFile(join(host, 'resolve-hook.mjs'), `
let port
export function initialize (data) { port = data.port }
export async function resolve (specifier, context, next) {
  const result = await next(specifier, context)
  port.postMessage(result.url)
  return result
}
`)
  await writeFile(join(host, 'app.mjs'), `
import { register, createRequire } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
const { port1, port2 } = new MessageChannel()
const resolved = []
port1.on('message', (url) => resolved.push(url))
port1.unref()
register(new URL('./resolve-hook.mjs', import.meta.url), { data: { port: port2 }, transferList: [port2] })
const require = createRequire(import.meta.url)
const packagesLoaded = () => {
  const names = new Set()
  for (const path of [...resolved, ...Object.keys(require.cache)]) {
    const match = /[/\\\\]node_modules[/\\\\]((?:@[^/\\\\]+[/\\\\])?[^/\\\\]+)[/\\\\]/.exec(path)
    if (match) names.add(match[1].replace('\\\\', '/'))
  }
  return [...names].sort()
}

const lib = await import('fastify-gateways')
await new Promise((resolve) => setTimeout(resolve, 50))
const rootLoads = packagesLoaded()

const { default: Fastify } = await import('fastify')
const { wsGateway } = await import('fastify-gateways/ws')
const { default: WebSocket } = await import('ws')
const app = Fastify()
await app.register(wsGateway, { path: '/ws' })
await app.listen({ port: 0, host: '127.0.0.1' })
const socket = new WebSocket('ws://127.0.0.1:' + app.server.address().port + '/ws')
const frames = []
let wake = () => {}
socket.on('message', (data) => { frames.push(JSON.parse(data.toString())); wake() })
const next = () => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no frame within 5 s: ' + JSON.stringify(frames))), 5000)
  const check = () => { if (frames.length > 0) { clearTimeout(timer); resolve(frames.shift()) } else wake = check }
  check()
})
const hello = await next()
socket.send(JSON.stringify({ op: 'join', room: 'public:lobby', ref: 1 }))
const joined = await next()
const published = await app.rooms.publish('public:lobby', 'greeting', { text: 'hi' })
const event = await next()
socket.close()
await app.close()

const missing = {}
for (const [name, options] of Object.entries({
  stripeGateway: { webhookSecret: 'whsec_test' },
  smsGateway: { authToken: 'token' },
  kafkaGateway: { brokers: ['127.0.0.1:9092'] }
})) {
  const other = Fastify()
  try {
    await other.register(lib[name], options)
    await other.ready()
    missing[name] = { registered: true }
  } catch (err) {
    missing[name] = { code: err.code, message: err.message }
  }
  await other.close().catch(() => {})
}
console.log(JSON.stringify({ root: Object.keys(lib).sort(), rootLoads, hello, joined, event, published, missing }))
`)
  const { stdout } = await run(process.execPath, ['app.mjs'], { cwd: host, ...big })
  const report = JSON.parse(stdout) as {
    root: string[], rootLoads: string[], hello: unknown, joined: unknown, event: unknown, published: { id: string, delivered: number },
    missing: Record<string, { code?: string, message?: string, registered?: boolean }>
  }
  for (const name of ['rooms', 'wsGateway', 'sseGateway', 'rtcSignalGateway', 'stripeGateway', 'smsGateway', 'externalGateway', 'kafkaGateway', 'RoomRegistry', 'createJwtAuthenticator', 'GatewayErrors']) {
    t.ok(report.root.includes(name), `the root exports ${name}`)
  }
  for (const name of ['RedisBus', 'RoomHistory', 'HistoryStore', 'formatId', 'createOriginPolicy', 'extractToken', 'userRoomGlobs']) {
    t.notOk(report.root.includes(name), `${name} is not exported from the root`)
  }
  for (const sdk of SDKS) t.notOk(report.rootLoads.includes(sdk), `importing the root does not load ${sdk}`)
  t.match(report.hello, { op: 'hello', user: null })
  t.same(report.joined, { op: 'joined', room: 'public:lobby', ref: 1 })
  t.same(report.event, { op: 'event', room: 'public:lobby', event: 'greeting', data: { text: 'hi' }, id: report.published.id })
  t.equal(report.published.delivered, 1)
  const expected: Record<string, string> = { stripeGateway: 'stripe', smsGateway: 'twilio', kafkaGateway: 'kafkajs' }
  for (const [name, sdk] of Object.entries(expected)) {
    t.match(report.missing[name], { code: 'GW_MISSING_PEER', message: new RegExp(`npm install ${sdk}$`) }, `${name} without ${sdk}: GW_MISSING_PEER naming it`)
  }
})

t.test('in the host: require() loads the root and a subpath (Node 20.19+)', async (t) => {
  await writeFile(join(host, 'app.cjs'), `
const root = require('fastify-gateways')
const ws = require('fastify-gateways/ws')
console.log(JSON.stringify({ root: typeof root.wsGateway, sameGateway: root.wsGateway === ws.wsGateway, defaultExport: ws.default === ws.wsGateway }))
`)
  const { stdout } = await run(process.execPath, ['--no-warnings', 'app.cjs'], { cwd: host })
  t.same(JSON.parse(stdout), { root: 'function', sameGateway: true, defaultExport: true })
})

t.test('in the host: the fastify-gateways bin serves from the environment and stops on SIGTERM', async (t) => {
  const bin = join(host, 'node_modules', '.bin', 'fastify-gateways')
  t.ok(existsSync(bin), 'npm linked the bin')
  const child = spawn(bin, [], {
    cwd: host,
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no listening line within 30 s: ${output}`)) }, 30_000)
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}: ${output}`))
    })
  })
  const health = await fetch(`${url}/health`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  t.equal((await fetch(`${url}/client.js`)).status, 200, 'the demo assets ship with the package')
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'a graceful stop')
})

t.test('in the host: the shipped declarations compile with skipLibCheck off, without any SDK or @types/ws', async (t) => {
  await writeFile(join(host, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM'],
      strict: true,
      skipLibCheck: false,
      noEmit: true,
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')]
    },
    include: ['host.ts']
  }))
  const imports = SDK_FREE_SUBPATHS.map((sub, i) => `import * as m${i} from '${sub === '.' ? 'fastify-gateways' : `fastify-gateways/${sub.slice(2)}`}'`)
  await writeFile(join(host, 'host.ts'), `
import Fastify from 'fastify'
import { wsGateway, sseGateway, rtcSignalGateway, stripeGateway, createJwtAuthenticator, type Authenticate } from 'fastify-gateways'
${imports.join('\n')}
export const modules = [${SDK_FREE_SUBPATHS.map((_s, i) => `m${i}`).join(', ')}]

const authenticate: Authenticate = async (token, request) => token === null ? null : { id: request.ip }
const app = Fastify()
await app.register(wsGateway, { authenticate, authorizeJoin: (user, room) => user !== null || room.startsWith('public:') })
await app.register(sseGateway, { authenticate: createJwtAuthenticator('a-secret-of-at-least-thirty-two-bytes!') })
await app.register(rtcSignalGateway, { roomCapacity: 4 })
await app.register(stripeGateway, { webhookSecret: 'whsec_x' })
const result = await app.rooms.publish('public:lobby', 'note', { n: 1 })
export const id: string = result.id
`)
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const out = await run(process.execPath, [tsc, '-p', host], { cwd: host, ...big }).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  t.equal(out, '', 'tsc reports nothing')
})

async function du (path: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const full = join(path, entry.name)
    if (entry.isDirectory()) total += await du(full)
    else if (entry.isFile()) total += (await stat(full)).size
  }
  return total
}
