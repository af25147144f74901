import type Stripe from 'stripe'

/** Every event type `stripe`'s own `Stripe.Event` union knows (the SDK's pinned API version). */
export type StripeEventType = Stripe.Event['type']

/** The `Stripe.Event` member of one type: `StripeEventOf<'checkout.session.completed'>` has a `Checkout.Session`. */
export type StripeEventOf<T extends StripeEventType> = Extract<Stripe.Event, { type: T }>

export type StripeEventHandler<E, C> = (event: E, ctx: C) => unknown

/**
 * Handlers by event type, each receiving its event narrowed to that type, plus `'*'` for every event (including
 * types newer than the SDK's union), run after the typed one. `C` is the context the plugin hands over.
 */
export type StripeEventHandlers<C> = {
  [T in StripeEventType]?: StripeEventHandler<StripeEventOf<T>, C>
} & {
  '*'?: StripeEventHandler<Stripe.Event, C>
}

/** The static side of the `stripe` package's default export (`Stripe.webhooks`, `Stripe.errors`, `new Stripe()`). */
export type StripeModule = typeof Stripe
