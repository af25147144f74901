import type { RoomRegistry } from '../rooms/registry.js'
import { isRoomName } from '../rooms/names.js'
import type { SslcommerzNotification } from './schemas.js'

/** The room every accepted notification is published to. */
export const SSLCOMMERZ_ROOM = 'sslcommerz'

/** The fields an event carries (those present). */
export const EVENT_FIELDS = ['tran_id', 'val_id', 'amount', 'currency', 'status', 'card_type', 'value_a', 'value_b', 'value_c', 'value_d'] as const

export interface PublishLogger {
  warn (obj: object, msg: string): void
}

/** Event `sslcommerz.<status lowercased>` and its data: the listed fields of the notification that are present. */
export function sslcommerzEvent (notification: SslcommerzNotification): { name: string, data: Record<string, string> } {
  const data: Record<string, string> = {}
  for (const field of EVENT_FIELDS) {
    const value = notification[field]
    if (typeof value === 'string' && value !== '') data[field] = value
  }
  return { name: `sslcommerz.${notification.status.toLowerCase()}`, data }
}

/**
 * Publishes an accepted notification (docs/sslcommerz.md): to `room` (default `sslcommerz`) and to `user:<value_a>`
 * when `value_a` is set (`createSession({ userId })` puts the user there). A `value_a` that makes no legal room name
 * is skipped with a warning: retrying would not make it legal. Returns the rooms published to.
 */
export async function publishSslcommerzEvent (rooms: RoomRegistry, notification: SslcommerzNotification,
  log?: PublishLogger, room = SSLCOMMERZ_ROOM): Promise<string[]> {
  const { name, data } = sslcommerzEvent(notification)
  await rooms.publish(room, name, data)
  const published = [room]
  const user = notification.value_a
  if (user !== undefined && user !== '') {
    const userRoom = `user:${user}`
    if (isRoomName(userRoom)) {
      await rooms.publish(userRoom, name, data)
      published.push(userRoom)
    } else {
      log?.warn({ tranId: notification.tran_id }, 'sslcommerz value_a is not a legal user room name: user room skipped')
    }
  }
  return published
}
