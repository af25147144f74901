import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { wsGateway } from '../plugins/ws.js'

t.test('an upgrade answered over HTTP by a host hook before the gateway closes its socket, and close does not hang', async (t) => {
  t.setTimeout(15_000)
  const app = Fastify()
  // registered before the gateway: runs before @fastify/websocket's own onRequest hook
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-maintenance'] === '1') await reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'maintenance' })
  })
  await app.register(wsGateway, { publicRooms: ['public:*'] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  const client = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { 'x-maintenance': '1' } })
  const [, response] = await once(client, 'unexpected-response') as [unknown, { statusCode: number, socket: { once: (e: string, f: () => void) => void } }]
  t.equal(response.statusCode, 503)
  // the client never closes it: only the server can, within the bound
  const closedBy = await Promise.race([
    new Promise<string>((resolve) => response.socket.once('close', () => { resolve('server') })),
    new Promise<string>((resolve) => setTimeout(() => { resolve('nobody within 10 s') }, 10_000).unref())
  ])
  t.equal(closedBy, 'server', 'the server closed the refused socket')

  const ok = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  await once(ok, 'open')
  ok.terminate()
  await t.resolves(app.close(), 'app.close() returns')
})
