import t from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { afterCorkedFlush, corkForTick, isCorkedForTick } from '../lib/io/cork.js'

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

t.test('writes of one tick leave together after the tick, and buffer checks wait for the flush', async (t) => {
  const { client, server } = await socketPair(t)
  const other = await socketPair(t)
  const order: string[] = []
  corkForTick(server)
  corkForTick(server) // a second call in the same tick changes nothing
  corkForTick(other.server)
  t.equal(server.writableCorked, 1)
  t.equal(isCorkedForTick(server), true)
  server.write('a')
  server.write('b')
  other.server.write('c')
  t.equal(server.writableLength, 2, 'held while corked')
  afterCorkedFlush(() => order.push(`checked with ${server.writableLength + other.server.writableLength} unsent`))
  order.push('tick ends')
  const [data] = await once(client, 'data') as [Buffer]
  t.equal(data.toString(), 'ab', 'one chunk')
  t.equal((await once(other.client, 'data'))[0].toString(), 'c', 'every socket corked in the tick is flushed')
  t.equal(server.writableCorked, 0)
  t.equal(isCorkedForTick(server), false)
  t.same(order, ['tick ends', 'checked with 0 unsent'])
  corkForTick(server)
  t.equal(isCorkedForTick(server), true, 'corked again in a later tick')
})

t.test('other targets and sockets corked by someone else are left alone', async (t) => {
  const { server } = await socketPair(t)
  server.cork()
  corkForTick(server)
  t.equal(server.writableCorked, 1, 'not corked twice')
  t.equal(isCorkedForTick(server), false, 'its owner uncorks it')
  server.uncork()
  const stream = { write: () => true }
  corkForTick(stream)
  t.equal(isCorkedForTick(stream), false)
  server.destroy()
  corkForTick(server)
  t.equal(server.writableCorked, 0, 'a destroyed socket is not corked')
})
