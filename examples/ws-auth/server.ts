// WebSocket rooms with authentication: a login route hands out a JWT, the socket authenticates with it, a user joins
// its own `user:<id>` room, the `team:*` rooms its token lists, `public:*` rooms, and the rooms a host rule adds.
//
//   AUTH_JWT_SECRET=$(openssl rand -hex 32) node --import tsx examples/ws-auth/server.ts
//   TOKEN=$(curl -s -XPOST localhost:3000/login -H 'content-type: application/json' -d '{"user":"42"}' | jq -r .token)
//   websocat "ws://localhost:3000/ws?token=$TOKEN"     then send {"op":"join","room":"user:42"}
//   curl -XPOST localhost:3000/notify/42 -H 'content-type: application/json' -d '{"text":"hello"}'
import Fastify from 'fastify'
import { SignJWT } from 'jose'
import { wsGateway, createJwtAuthenticator, createRoomPolicy, type AuthorizeRoom } from 'fastify-gateways'

const secret = process.env.AUTH_JWT_SECRET ?? ''
const app = Fastify({ logger: true })

// the built-in rule (own user room, the token's rooms claim, public:*) plus one room of the host's own
const policy = createRoomPolicy({ publicRooms: ['public:*'] })
const authorizeJoin: AuthorizeRoom = (user, room) => policy.canJoin(user, room) || (user !== null && room === 'members')

await app.register(wsGateway, {
  // refuses a secret shorter than 32 bytes at start-up
  authenticate: createJwtAuthenticator(secret),
  authorizeJoin,
  clientPublishRooms: ['public:chat']
})

// a stand-in for your real login: a token for any user id, valid for an hour, with the team rooms it may join
app.post<{ Body: { user: string } }>('/login', {
  schema: { body: { type: 'object', required: ['user'], properties: { user: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } }
}, async (request) => {
  const token = await new SignJWT({ rooms: ['team:*'] })
    .setProtectedHeader({ alg: 'HS256' }).setSubject(request.body.user).setIssuedAt().setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret))
  return { token }
})

// the server pushes to one user: every socket of that user that joined user:<id> gets it
app.post<{ Params: { user: string }, Body: unknown }>('/notify/:user', async (request) => {
  return await app.rooms.publish(`user:${request.params.user}`, 'notification', request.body)
})

await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
