import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { RoomRegistry } from '../lib/rooms/registry.js'
import { MemoryBus } from '../lib/rooms/memory-bus.js'
import type { Bus } from '../lib/rooms/bus.js'
import { parseOptions } from '../lib/options.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the one room registry every gateway of this instance shares */
    rooms: RoomRegistry
  }
}

const RoomsOptions = z.strictObject({
  historySize: z.number().int().min(0).max(100_000).default(100),
  historyTtlMs: z.number().int().min(1000).default(24 * 3600 * 1000),
  historyRooms: z.number().int().min(1).default(10_000),
  /** bytes of history kept in total by the in-memory bus (every room, bookkeeping included); oldest events go first */
  historyMaxBytes: z.number().int().min(64 * 1024).default(64 * 1024 * 1024),
  /** bytes of history kept per room */
  historyRoomMaxBytes: z.number().int().min(1024).default(1024 * 1024),
  /** an event larger than this is delivered live but not kept for resume (a resume across it reports a gap) */
  historyEventMaxBytes: z.number().int().min(256).default(256 * 1024),
  bus: z.custom<Bus>((v) => typeof (v as Bus)?.broker?.publish === 'function' && typeof (v as Bus)?.failing === 'function', {
    message: 'must implement the Bus interface: { broker, presence?, control?, failing(), close() } (lib/rooms/bus.ts)'
  }).optional(),
  /** a hole in a room's offsets not filled live within this long is filled from history */
  gapTimeoutMs: z.number().int().min(10).max(60_000).default(500)
})

export type RoomsOptions = z.input<typeof RoomsOptions>

async function roomsPlugin (app: FastifyInstance, raw: RoomsOptions) {
  const options = parseOptions('fastify-gateways/rooms', RoomsOptions, raw)
  const bus: Bus = options.bus ?? new MemoryBus({
    historySize: options.historySize,
    historyTtlMs: options.historyTtlMs,
    historyRooms: options.historyRooms,
    historyMaxBytes: options.historyMaxBytes,
    historyRoomMaxBytes: options.historyRoomMaxBytes,
    historyEventMaxBytes: options.historyEventMaxBytes
  })
  // a bus on an optional client library fails register here when the library is missing (GW_MISSING_PEER)
  await bus.open?.()
  const registry = new RoomRegistry({
    bus,
    gapTimeoutMs: options.gapTimeoutMs,
    onDeliveryError: (err, member, event) => {
      app.log.warn({ err, member: member.id, transport: member.transport, room: event.room }, 'delivery to a member failed')
    }
  })
  app.decorate('rooms', registry)
  // metrics: connections that end from here on were ended by the shutdown
  app.addHook('preClose', async () => { registry.counters.markShutdown() })
  app.addHook('onClose', async () => { await registry.close() })
}

export const rooms = fp(roomsPlugin, { fastify: '5.x', name: 'fastify-gateways/rooms' })
export default rooms

/**
 * Registers `rooms` on `app` unless an ancestor already did, so any gateway can be registered alone. Gateways call
 * this from their non-encapsulated outer function, so the registry lands in the host's scope and is shared.
 */
export async function ensureRooms (app: FastifyInstance): Promise<RoomRegistry> {
  if (!app.hasDecorator('rooms')) await app.register(rooms)
  return app.rooms
}
