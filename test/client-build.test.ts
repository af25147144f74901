import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildClient, PUBLIC_DIR } from '../lib/client/build.js'

// public/client.js and public/client.d.ts are built from lib/client/*.ts and committed (the package and GET /client.js
// serve them). A fresh build must give the same bytes: a source changed without `npm run build:client` fails here.

t.test('the committed public/client.js and client.d.ts are exactly what the sources build to', async (t) => {
  const built = await buildClient()
  const stale: string[] = []
  for (const [name, text] of [['client.js', built.js], ['client.d.ts', built.dts]] as const) {
    if (readFileSync(join(PUBLIC_DIR, name), 'utf8') !== text) stale.push(`public/${name}`)
  }
  t.same(stale, [], 'up to date (if not: npm run build:client, then commit public/client.js and public/client.d.ts)')

  t.notMatch(built.js, /^\s*import\b|\brequire\(/m, 'one self-contained module: no import of anything else')
  const exported = [...built.js.matchAll(/^export \{([\s\S]*?)\};/gm)].flatMap((m) => m[1].split(',').map((name) => name.trim()))
  t.same(exported.sort(), [
    'Backoff', 'GatewayClient', 'GatewayError', 'ResumeTracker', 'RtcPeer', 'RtcSession', 'SseParser', 'SseSubscription',
    'backoffDelay', 'connect', 'fetchIceServers', 'joinRtc', 'subscribe', 'toHttpUrl', 'toSocketUrl'
  ], 'the public API of the client')
  for (const name of exported) t.match(built.dts, new RegExp(`export declare (class|function) ${name}\\b`), `${name} is declared in client.d.ts`)
})
