import Fastify from 'fastify'
import type Stripe from 'stripe'
import { expect, test } from 'tstyche'
import { stripeGateway } from 'fastify-gateways/stripe'
import type { RoomRegistry } from 'fastify-gateways'

// The stripe gateway through its own subpath (a host with the stripe package installed): typed handlers and decorator.
const app = Fastify()

test('each handler gets its event narrowed to its type', () => {
  void app.register(stripeGateway, {
    webhookSecret: 'whsec_x',
    on: {
      'checkout.session.completed': async (event, ctx) => {
        expect(event.type).type.toBe<'checkout.session.completed'>()
        expect(event.data.object).type.toBe<Stripe.Checkout.Session>()
        expect(ctx.rooms).type.toBe<RoomRegistry>()
      },
      'invoice.paid': (event) => {
        expect(event.data.object).type.toBe<Stripe.Invoice>()
      }
    }
  })
})

test('options are checked by the types', () => {
  expect(app.register(stripeGateway, { on: {} })).type.toRaiseError()
  expect(app.register(stripeGateway, { webhookSecret: 42 })).type.toRaiseError()
})

test('the subpath declares app.stripe', () => {
  expect(app).type.toHaveProperty('stripe')
})
