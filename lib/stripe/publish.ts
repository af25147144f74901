import type Stripe from 'stripe'
import type { RoomRegistry } from '../rooms/registry.js'
import { isRoomName } from '../rooms/names.js'
import { isEventName } from '../rooms/event.js'

/** The room every verified Stripe event is published to by server.ts. */
export const STRIPE_ROOM = 'stripe'

export interface PublishLogger {
  warn (obj: object, msg: string): void
}

/**
 * The user an event's object belongs to: `metadata.userId`, else `client_reference_id` (Checkout). Only a non-empty
 * string counts; the first one wins, so an unrelated `client_reference_id` (an order id) never adds a second room.
 */
export function stripeUserId (object: unknown): string | null {
  if (typeof object !== 'object' || object === null) return null
  const { metadata, client_reference_id: ref } = object as { metadata?: unknown, client_reference_id?: unknown }
  const fromMetadata = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).userId : undefined
  if (typeof fromMetadata === 'string' && fromMetadata !== '') return fromMetadata
  if (typeof ref === 'string' && ref !== '') return ref
  return null
}

/**
 * docs/stripe.md, as server.ts wires it: event `stripe.<type>` with `data.object` as data, to room `stripe` and
 * to `user:<id>` when the object names its user. A user id that makes no legal room name is skipped with a warning
 * (so is a type that makes no legal event name): retrying would not make it legal. Returns the rooms published to.
 */
export async function publishStripeEvent (rooms: RoomRegistry, event: Stripe.Event, log?: PublishLogger): Promise<string[]> {
  const name = `stripe.${event.type}`
  if (!isEventName(name)) {
    log?.warn({ eventId: event.id }, 'stripe event type is not a legal event name: not published')
    return []
  }
  const object = event.data.object
  await rooms.publish(STRIPE_ROOM, name, object)
  const published = [STRIPE_ROOM]
  const user = stripeUserId(object)
  if (user !== null) {
    const room = `user:${user}`
    if (isRoomName(room)) {
      await rooms.publish(room, name, object)
      published.push(room)
    } else {
      log?.warn({ eventId: event.id, type: event.type }, 'stripe event names a user id that is not a legal room name: user room skipped')
    }
  }
  return published
}
