import Fastify, { type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import {
  wsGateway, sseGateway, rtcSignalGateway, stripeGateway, smsGateway, kafkaGateway, createJwtAuthenticator, createRoomPolicy,
  type Authenticate, type AuthorizeRoom, type GatewayUser, type OptionalPeerGateway, type RoomRegistry,
  type WsGatewayOptions, type SseOptions, type RtcSignalGatewayOptions
} from 'fastify-gateways'

// The public types as a host sees them through the root entry only (the shipped declarations, built into dist/).
const app = Fastify()

test('app.rooms is typed; the SDK gateways\' decorators are not, without their subpath', () => {
  expect(app.rooms).type.toBe<RoomRegistry>()
  expect(app).type.not.toHaveProperty('stripe')
  expect(app).type.not.toHaveProperty('sms')
  expect(app).type.not.toHaveProperty('kafka')
})

test('authenticate receives the token and the FastifyRequest', () => {
  const authenticate: Authenticate = (token, request) => {
    expect(token).type.toBe<string | null>()
    expect(request).type.toBe<FastifyRequest>()
    return token === null ? null : { id: request.ip }
  }
  void app.register(wsGateway, { authenticate })
  void app.register(sseGateway, { authenticate: async (_token, request) => ({ id: request.ip, claims: { via: request.url } }) })
  void app.register(rtcSignalGateway, { authenticate: createJwtAuthenticator('a-secret-of-at-least-thirty-two-bytes!') })
  expect(createJwtAuthenticator('a-secret-of-at-least-thirty-two-bytes!')).type.toBeAssignableTo<Authenticate>()
})

test('join and publish rules take the user and the room', () => {
  const policy = createRoomPolicy({ publicRooms: ['public:*'] })
  const authorizeJoin: AuthorizeRoom = (user, room) => {
    expect(user).type.toBe<GatewayUser | null>()
    expect(room).type.toBe<string>()
    return policy.canJoin(user, room) || room === 'vip'
  }
  void app.register(wsGateway, { authorizeJoin, authorizePublish: async () => true, clientPublishRooms: ['chat:*'] })
  expect(app.register(wsGateway, { authorizeJoin: (_user: GatewayUser | null, room: number) => room > 0 })).type.toRaiseError()
})

test('option objects are checked by the types: wrong types and unknown options are errors', () => {
  expect(app.register(wsGateway, { maxPayload: '64k' })).type.toRaiseError()
  expect(app.register(wsGateway, { pathh: '/ws' })).type.toRaiseError()
  expect(app.register(sseGateway, { heartbeatMs: 'soon' })).type.toRaiseError()
  expect(app.register(sseGateway, { clientPublishRooms: ['x'] })).type.toRaiseError()
  expect(app.register(rtcSignalGateway, { roomCapacity: true })).type.toRaiseError()
  expect(app.register(rtcSignalGateway, { iceServersPath: true })).type.toRaiseError()
  expect(app.register(rtcSignalGateway, { iceServersPath: false })).type.not.toRaiseError()
})

test('option types are the inputs of the plugins\' schemas: everything optional, defaults applied at register', () => {
  expect<WsGatewayOptions['maxPayload']>().type.toBe<number | undefined>()
  expect<WsGatewayOptions['allowedOrigins']>().type.toBe<string[] | undefined>()
  expect<SseOptions['retryMs']>().type.toBe<number | undefined>()
  expect<RtcSignalGatewayOptions['turnSecret']>().type.toBe<string | undefined>()
  expect<Required<WsGatewayOptions>['authenticate']>().type.toBe<Authenticate>()
})

test('the SDK gateways from the root are registrable, loosely typed; their subpaths type them in full', () => {
  expect(stripeGateway).type.toBe<OptionalPeerGateway>()
  expect(smsGateway).type.toBe<OptionalPeerGateway>()
  expect(kafkaGateway).type.toBe<OptionalPeerGateway>()
  void app.register(stripeGateway, { webhookSecret: 'whsec_x' })
})
