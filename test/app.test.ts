import t from 'tap'
import Fastify from 'fastify'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { buildTestApp } from './helpers/app.js'
import { NO_COVERAGE } from './helpers/instance.js'
import { healthRoutes } from '../routes/health.js'
import { rooms, ensureRooms } from '../plugins/rooms.js'
import { loadConfig } from '../lib/config.js'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('GET /health answers ok and GET /ready ok with nothing to wait for', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: ',' })
  t.after(() => app.close())
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  t.equal(health.headers['cache-control'], 'no-store')
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ok' })
})

t.test('GET /ready lists the dependencies that are down with 503', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  let kafka = false
  await app.register(healthRoutes, { checks: { kafka: () => kafka, redis: () => { throw new Error('boom') } } })
  const res = await app.inject('/ready')
  t.equal(res.statusCode, 503)
  t.same(res.json(), { status: 'unavailable', failing: ['kafka', 'redis'] })
  kafka = true
  t.same((await app.inject('/ready')).json().failing, ['redis'])
})

t.test('the rooms plugin decorates one registry, validates options and closes it', async (t) => {
  const app = Fastify()
  await app.register(rooms, { historySize: 5 })
  await app.register(async (child) => {
    const registry = await ensureRooms(child)
    t.equal(registry, app.rooms, 'a child scope sees the same registry')
  })
  await app.ready()
  const registry = app.rooms
  t.equal(registry.isReady(), true)
  await app.close()
  t.equal(registry.isReady(), false, 'closed with the app')
  await t.rejects(async () => {
    const bad = Fastify()
    await bad.register(rooms, { historySize: -1 } as never)
    await bad.ready()
  }, { code: 'GW_INVALID_OPTIONS', message: /fastify-gateways\/rooms: historySize: / })
  await t.rejects(async () => {
    const bad = Fastify()
    await bad.register(rooms, { histroySize: 5 } as never)
    await bad.ready()
  }, { message: /unknown option "histroySize"/ })
  await t.rejects(async () => {
    const bad = Fastify()
    await bad.register(rooms, { bus: {} } as never)
    await bad.ready()
  }, { message: /bus: must implement the Bus interface/ })
})

t.test('ensureRooms registers the registry in the calling scope when none exists', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  const registry = await ensureRooms(app)
  await app.ready()
  t.equal(app.rooms, registry)
  t.equal(await ensureRooms(app), registry, 'idempotent')
})

function runServer (env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
    cwd: root,
    // tsx's transpilation of server.ts must not be merged into tap's coverage of the same files
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', [NO_COVERAGE]: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const exited = once(child, 'exit').then(([code]) => code as number)
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000)
  exited.finally(() => clearTimeout(killer)).catch(() => {})
  return { child, exited, out: () => stdout, err: () => stderr }
}

t.test('start-up refuses bad configuration with one line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ GATEWAYS: 'ws,nope' }, 'fastify-gateways: configuration error: GATEWAYS: unknown gateway "nope"'],
    [{ GATEWAYS: 'stripe' }, 'fastify-gateways: configuration error: STRIPE_WEBHOOK_SECRET: is required by the stripe gateway'],
    [{ GATEWAYS: 'stripe', STRIPE_WEBHOOK_SECRET: 'not-a-whsec-SECRET123' }, 'fastify-gateways: configuration error: STRIPE_WEBHOOK_SECRET: each secret must start with whsec_']
  ]
  await Promise.all(cases.map(async ([env, line]) => {
    const run = runServer(env)
    t.equal(await run.exited, 1, `exit code 1 for ${JSON.stringify(env)}`)
    const lines = run.err().trim().split('\n')
    t.equal(lines.length, 1, 'one line, no stack trace')
    t.match(lines[0], line)
    t.notMatch(run.err() + run.out(), 'SECRET123', 'the value is never echoed')
  }))
})

t.test('the server starts, serves /health and shuts down on SIGTERM', async (t) => {
  const run = runServer({ GATEWAYS: ',', PORT: '0', HOST: '127.0.0.1' })
  t.after(() => { run.child.kill('SIGKILL') })
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(run.out())
      if (match !== null) {
        run.child.stdout.off('data', onData)
        resolve(match[1])
      }
    }
    run.child.stdout.on('data', onData)
    run.exited.then((code) => reject(new Error(`exited ${code}: ${run.err()}`)), reject)
  })
  const res = await fetch(`${url}/health`)
  t.equal(res.status, 200)
  t.same(await res.json(), { status: 'ok' })
  run.child.kill('SIGTERM')
  t.equal(await run.exited, 0)
  t.match(run.out(), /shutting down/)
})

t.test('the default gateways serve the demo page, the client, ws, sse and rtc', async (t) => {
  const { app } = await buildTestApp({})
  t.after(() => app.close())
  const page = await app.inject('/')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.match(page.body, /<body data-ws="\/ws" data-sse="\/sse" data-rtc="\/rtc" data-api="" data-sslcommerz="" data-publish="[^"]*">/, 'the page knows external is off')
  t.match(page.body, `data-publish="${loadConfig({}).CLIENT_PUBLISH_ROOMS.join(',')}"`, 'and where browsers may publish (CLIENT_PUBLISH_ROOMS)')
  const client = await app.inject('/client.js')
  t.equal(client.statusCode, 200)
  t.match(client.headers['content-type'], /javascript/)
  t.equal((await app.inject('/rtc/ice-servers')).statusCode, 200)
  t.equal((await app.inject('/sse')).statusCode, 400, 'sse is mounted (no room given)')
  const ws = await app.injectWS('/ws')
  t.teardown(() => ws.terminate())
  t.equal(ws.readyState, ws.OPEN, 'ws upgrades')
})

t.test('with ws alone the demo page says sse and rtc are off', async (t) => {
  const { app } = await buildTestApp({ GATEWAYS: 'ws' })
  t.after(() => app.close())
  t.match((await app.inject('/')).body, /<body data-ws="\/ws" data-sse="" data-rtc="" data-api="" data-sslcommerz="" data-publish="[^"]*">/)
  t.equal((await app.inject('/sse')).statusCode, 404)
})

t.test('start-up says whether clients may publish and how to close it', async (t) => {
  const open = await buildTestApp({})
  t.after(() => open.app.close())
  t.match(open.logs.text(), /"clientPublishRooms":\["public:demo\*"\].*set CLIENT_PUBLISH_ROOMS= \(empty\) to close client publishing/)
  const closed = await buildTestApp({ CLIENT_PUBLISH_ROOMS: '' })
  t.after(() => closed.app.close())
  t.match(closed.logs.text(), /client publishing is closed/)
  const ws = await closed.app.injectWS('/ws', { socket: { remoteAddress: '10.0.0.1' } } as never)
  t.teardown(() => ws.terminate())
  const frames: Array<Record<string, unknown>> = []
  const forbidden = new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown>
      frames.push(frame)
      if (frame.op === 'error') resolve()
    })
  })
  ws.send(JSON.stringify({ op: 'publish', room: 'public:demo', event: 'e', data: 1, ref: 'p' }))
  await forbidden
  t.match(frames.find((f) => f.op === 'error'), { code: 'FORBIDDEN', ref: 'p' }, 'the demo room is closed too')
})
