import type Stripe from 'stripe'

/** Every event type `stripe`'s own `Stripe.Event` union knows (the SDK's pinned API version). */
export type StripeEventType = Stripe.Event['type']

/** The `Stripe.Event` member of one type: `StripeEventOf<'checkout.session.completed'>` has a `Checkout.Session`. */
export type StripeEventOf<T extends StripeEventType> = Extract<Stripe.Event, { type: T }>

/** The key of the handler that runs for every event (after the typed one, if any). */
export const CATCH_ALL = '*'

export type StripeEventHandler<E, C> = (event: E, ctx: C) => unknown

/**
 * Handlers by event type, each receiving its event narrowed to that type, plus `'*'` for every event (including
 * types newer than the SDK's union). `C` is the context the plugin hands over (rooms, logger, Stripe client).
 */
export type StripeEventHandlers<C> = {
  [T in StripeEventType]?: StripeEventHandler<StripeEventOf<T>, C>
} & {
  '*'?: StripeEventHandler<Stripe.Event, C>
}
