import t from 'tap'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { NO_COVERAGE } from './helpers/instance.js'

// stripe and twilio are optional peer dependencies: a host without them loads every gateway module, and only
// registering the gateway that needs one fails, with GW_MISSING_PEER naming the package. A child process whose module
// resolution cannot find either package (a resolve hook) stands for such a host.

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))

const HOOK = `
export async function resolve (specifier, context, next) {
  const name = /^(stripe|twilio)(\\/|$)/.exec(specifier)
  if (name !== null) {
    throw Object.assign(new Error("Cannot find package '" + name[1] + "' imported from " + context.parentURL), { code: 'ERR_MODULE_NOT_FOUND' })
  }
  return next(specifier, context)
}
`

const SCRIPT = (base: string) => `
const { default: Fastify } = await import(${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('fastify')).href)})
const { stripeGateway } = await import(${JSON.stringify(`${base}plugins/stripe.ts`)})
const { smsGateway } = await import(${JSON.stringify(`${base}plugins/sms.ts`)})
const { sslcommerzGateway } = await import(${JSON.stringify(`${base}plugins/sslcommerz.ts`)})
const out = {}
for (const [name, plugin, options] of [
  ['stripe', stripeGateway, { webhookSecret: 'whsec_abc' }],
  ['sms', smsGateway, { authToken: 'token' }],
  ['sslcommerz', sslcommerzGateway, { storeId: 'store', storePassword: 'pw' }]
]) {
  const app = Fastify()
  try {
    await app.register(plugin, options)
    await app.ready()
    out[name] = 'ok'
  } catch (err) {
    out[name] = { code: err.code, message: err.message }
  }
  await app.close()
}
console.log(JSON.stringify(out))
`

t.test('without stripe and twilio installed, their gateways fail register with GW_MISSING_PEER; the others work', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-peers-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'hook.mjs'), HOOK)
  await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)})\n`)
  await writeFile(join(dir, 'host.mts'), SCRIPT(pathToFileURL(root).href))
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--import', pathToFileURL(join(dir, 'register.mjs')).href, join(dir, 'host.mts')],
    { cwd: root, env: { ...process.env, [NO_COVERAGE]: '0' }, timeout: 60_000 })
  const out = JSON.parse(stdout.trim().split('\n').at(-1) as string)
  t.same(out.stripe, { code: 'GW_MISSING_PEER', message: 'the stripe gateway needs the package stripe: npm install stripe' })
  t.same(out.sms, { code: 'GW_MISSING_PEER', message: 'the sms gateway needs the package twilio: npm install twilio' })
  t.equal(out.sslcommerz, 'ok', 'sslcommerz needs no SDK')
})
