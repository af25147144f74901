import type { Admission } from '../admission/admission.js'
import type { SocketConnection, ConnectionLog } from './connection.js'
import type { Ref } from './protocol.js'

/**
 * The admission of a `join` on a socket (ws, rtc): within the connection's rooms limit and allowed by the join rule
 * (lib/admission); otherwise an `error` `FORBIDDEN` (with the frame's `ref`) and false. A join rule that throws
 * counts as a refusal and is logged.
 */
export async function admitJoin (conn: SocketConnection, room: string, ref: Ref | undefined,
  options: { admission: Pick<Admission, 'join'>, maxRooms: number, log: ConnectionLog }): Promise<boolean> {
  const refused = await options.admission.join(conn.user, room, { joined: conn.rooms, maxRooms: options.maxRooms })
  if (refused === null) return true
  if (refused.kind === 'forbidden' && refused.err !== undefined) {
    options.log.error({ err: refused.err, room, conn: conn.id }, 'authorizeJoin failed')
  }
  conn.fail('FORBIDDEN', refused.message, ref)
  return false
}
