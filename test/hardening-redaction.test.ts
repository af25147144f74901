import t from 'tap'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { buildTestApp, JWT_SECRET, signToken } from './helpers/app.js'
import { redactText, redactUrl } from '../lib/log.js'

/**
 * Credentials in query strings never reach the log (docs/security.md): the redaction decodes parameter names as the
 * query parser does, so `?tok%65n=<jwt>`, which authenticates, is redacted like `?token=`.
 */

t.test('a token under any spelling of its parameter name is not logged, though it authenticates', async (t) => {
  const { app, logs } = await buildTestApp({ AUTH_JWT_SECRET: JWT_SECRET, GATEWAYS: 'ws,sse' })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const jwt = await signToken('alice')
  const signature = jwt.split('.')[2]

  for (const query of [`tok%65n=${jwt}`, `%74%6F%6B%65%6E=${jwt}`, `tok%65n=${jwt}&TOKEN=x&token=${jwt}`, `room=r&token=${jwt}&token=${jwt}`]) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${query}`)
    const hello = JSON.parse((await once(ws, 'message'))[0].toString())
    t.equal(hello.user, 'alice', `?${query.slice(0, 20)}... authenticates`)
    ws.close()
    await once(ws, 'close')
  }
  // upper case, a route that does not exist (Fastify logs the raw URL in its 404 message), an SSE stream
  for (const path of [`/ws?TOKEN=${jwt}`, `/wss?tok%65n=${jwt}`, `/sse?room=public:a&Tok%65N=${jwt}`, `/nothing?a=1&api%5Fkey=${jwt}#frag`]) {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, resolve).on('error', reject)
    })
    t.ok(res.statusCode, `${path.slice(0, 12)}... answered ${res.statusCode}`)
    res.destroy()
  }
  await app.close()
  const text = logs.text()
  t.match(text, /tok%65n=\[redacted\]/, 'the encoded name is kept, its value replaced')
  t.match(text, /Route GET:\/wss\?tok%65n=\[redacted\] not found/, 'the 404 message is redacted too')
  t.match(text, /TOKEN=\[redacted\]/)
  t.notOk(text.includes(signature), 'the token appears nowhere in the log')
})

t.test('redactUrl and redactText', async (t) => {
  t.equal(redactUrl('/ws'), '/ws')
  t.equal(redactUrl('/ws?room=a'), '/ws?room=a')
  t.equal(redactUrl('/ws?token=abc&room=a'), '/ws?token=[redacted]&room=a')
  t.equal(redactUrl('/ws?tok%2565n=abc'), '/ws?tok%2565n=[redacted]', 'double encoding')
  t.equal(redactUrl('/ws?access+token=a&access_token=b'), '/ws?access+token=a&access_token=[redacted]')
  t.equal(redactUrl('/ws?token'), '/ws?token=[redacted]', 'a bare name')
  t.equal(redactUrl('/a?key=1#key=2'), '/a?key=[redacted]#key=2', 'the fragment is not a query')
  t.equal(redactUrl('/a?%zz=1&KEY=2'), '/a?%zz=1&KEY=[redacted]', 'a malformed escape is left as is')
  t.equal(redactText('no query here'), 'no query here')
  t.equal(redactText('Route GET:/x?token=abc not found'), 'Route GET:/x?token=[redacted] not found')
  t.equal(redactText('a? b'), 'a? b')
})
