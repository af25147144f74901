// Two processes, one Redis, one set of rooms: a publish on either instance reaches the room's members on both; resume
// ids, presence and room lists span both. Start it twice on two ports:
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node --import tsx examples/two-instances/server.ts
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3002 node --import tsx examples/two-instances/server.ts
//   websocat ws://localhost:3001/ws      then send {"op":"join","room":"public:news"}
//   curl -XPOST localhost:3002/publish/public:news -H 'content-type: application/json' -d '{"text":"from 3002"}'
//   curl localhost:3002/presence/public:news          {"members":1,"users":[]}: the socket on 3001 counts
import Fastify from 'fastify'
import { rooms, wsGateway, sseGateway } from 'fastify-gateways'
import { RedisBus } from 'fastify-gateways/redis'

const app = Fastify({ logger: true })

// the same keyPrefix on every instance that should act as one
const bus = new RedisBus({ redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix: 'example', log: app.log })
await app.register(rooms, { bus })
await app.register(wsGateway)
await app.register(sseGateway)

app.post<{ Params: { room: string }, Body: unknown }>('/publish/:room', async (request, reply) => {
  const result = await app.rooms.publish(request.params.room, 'note', request.body)
  return reply.code(202).send(result)
})

// members and users of a room on every instance
app.get<{ Params: { room: string } }>('/presence/:room', async (request) => await app.rooms.presence(request.params.room))

await app.listen({ port: Number(process.env.PORT ?? 3001), host: '127.0.0.1' })
