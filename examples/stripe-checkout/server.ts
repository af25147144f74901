// Stripe Checkout to the browser: a page opens an SSE stream on its user's room and starts a Checkout session; when
// Stripe calls the webhook with checkout.session.completed, the gateway verifies it, runs the handler once per event
// id, and the handler pushes `payment.succeeded` to that user's room, where the page shows it.
//
//   STRIPE_SECRET_KEY=sk_test_... STRIPE_WEBHOOK_SECRET=whsec_... node --import tsx examples/stripe-checkout/server.ts
//   stripe listen --forward-to localhost:3000/webhooks/stripe      (the Stripe CLI, for webhooks on localhost)
//   open http://localhost:3000/?user=42
import Fastify from 'fastify'
import { sseGateway } from 'fastify-gateways'
import { stripeGateway } from 'fastify-gateways/stripe'

const app = Fastify({ logger: true })

// a stand-in for your session: the page says who it is; use your real authentication here
await app.register(sseGateway, {
  authenticate: (_token, request) => {
    const user = (request.query as { user?: string }).user
    return user === undefined ? null : { id: user }
  }
})

await app.register(stripeGateway, {
  webhookSecret: (process.env.STRIPE_WEBHOOK_SECRET ?? '').split(','),
  secretKey: process.env.STRIPE_SECRET_KEY,
  on: {
    'checkout.session.completed': async (event, ctx) => {
      const session = event.data.object
      if (session.client_reference_id === null) return
      await ctx.rooms.publish(`user:${session.client_reference_id}`, 'payment.succeeded', {
        session: session.id, amount: session.amount_total, currency: session.currency
      })
    }
  }
})

app.post<{ Querystring: { user: string } }>('/checkout', async (request) => {
  const origin = `${request.protocol}://${request.host}`
  const session = await app.stripe.checkout.sessions.create({
    mode: 'payment',
    client_reference_id: request.query.user,
    line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'A coffee' } } }],
    success_url: `${origin}/?user=${encodeURIComponent(request.query.user)}`,
    cancel_url: `${origin}/?user=${encodeURIComponent(request.query.user)}`
  })
  return { url: session.url }
})

app.get('/', async (_request, reply) => reply.type('text/html').send(PAGE))

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>Checkout</title>
<button id="pay">Buy a coffee</button><pre id="log"></pre>
<script type="module">
const user = new URLSearchParams(location.search).get('user') ?? '42'
const log = (line) => { document.getElementById('log').textContent += line + '\\n' }
const stream = new EventSource('/sse?room=user:' + encodeURIComponent(user) + '&user=' + encodeURIComponent(user))
stream.addEventListener('payment.succeeded', (e) => log('paid: ' + e.data))
document.getElementById('pay').onclick = async () => {
  const { url } = await (await fetch('/checkout?user=' + encodeURIComponent(user), { method: 'POST' })).json()
  location.href = url
}
</script>`

await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
