import t from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { corkForTick, whenUncorked } from '../lib/io/cork.js'

async function socketPair (t: { after: (fn: () => void) => void }): Promise<{ client: Socket, server: Socket }> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const client = connect(port, '127.0.0.1')
  const [accepted] = await once(server, 'connection') as [Socket]
  await once(client, 'connect')
  t.after(() => { client.destroy(); accepted.destroy(); server.close() })
  return { client, server: accepted }
}

t.test('writes of one tick leave together after the tick, and buffer checks wait for the uncork', async (t) => {
  const { client, server } = await socketPair(t)
  const order: string[] = []
  corkForTick(server)
  corkForTick(server) // a second call in the same tick changes nothing
  t.equal(server.writableCorked, 1)
  server.write('a')
  server.write('b')
  t.equal(server.writableLength, 2, 'held while corked')
  t.equal(whenUncorked(server, () => order.push(`checked with ${server.writableLength} unsent`)), true)
  t.equal(whenUncorked(server, () => order.push('second check')), true)
  order.push('tick ends')
  const [data] = await once(client, 'data') as [Buffer]
  t.equal(data.toString(), 'ab', 'one chunk')
  t.equal(server.writableCorked, 0)
  t.same(order, ['tick ends', 'checked with 0 unsent', 'second check'])
  t.equal(whenUncorked(server, () => {}), false, 'not corked any more: check now')
})

t.test('other targets and sockets corked by someone else are left alone', async (t) => {
  const { server } = await socketPair(t)
  server.cork()
  corkForTick(server)
  t.equal(server.writableCorked, 1, 'not corked twice')
  t.equal(whenUncorked(server, () => {}), false, 'its owner uncorks it')
  server.uncork()
  const stream = { write: () => true }
  corkForTick(stream)
  t.equal(whenUncorked(stream, () => {}), false)
  server.destroy()
  corkForTick(server)
  t.equal(server.writableCorked, 0, 'a destroyed socket is not corked')
})
