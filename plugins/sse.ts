import fp from 'fastify-plugin'
import { z } from 'zod'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ensureRooms } from './rooms.js'
import { intOption, parseOptions, pathOption } from '../lib/options.js'
import { Admission } from '../lib/admission/admission.js'
import { SseHub } from '../lib/sse/hub.js'
import { admissionOptions } from './shared/options.js'
import { sseRoutes } from '../routes/sse.js'

const SseOptionsSchema = z.strictObject({
  /** the stream's route */
  path: pathOption.default('/sse'),
  ...admissionOptions,
  /** interval of `: ping` comments */
  heartbeatMs: intOption(10, 3_600_000, 15_000),
  /** the `retry:` the stream starts with: how long a browser waits before it reconnects */
  retryMs: intOption(0, 3_600_000, 3000),
  maxRoomsPerStream: intOption(1, 10_000, 32),
  /** bytes a stream may queue while its client does not read; past it the stream is ended (the browser resumes) */
  sendBufferBytes: intOption(1024, 1024 * 1024 * 1024, 1024 * 1024)
})

/** The options of `sseGateway` (docs/sse.md). */
export type SseOptions = z.input<typeof SseOptionsSchema>

/**
 * `GET /sse?room=a&room=b`: Server-Sent Events over the shared room registry (docs/sse.md, docs/protocol.md).
 * Streams are registry members whose events are encoded once per publish for all of them; `Last-Event-ID` resumes
 * every room of the stream exactly. Streams end cleanly on client disconnect, on back-pressure past
 * `sendBufferBytes`, and on shutdown (`preClose`).
 */
async function sseGatewayPlugin (app: FastifyInstance, raw: SseOptions) {
  const options = parseOptions('fastify-gateways/sse', SseOptionsSchema, raw)
  const registry = await ensureRooms(app)
  const hub = new SseHub(options.heartbeatMs)

  await app.register(sseRoutes, {
    path: options.path,
    registry,
    hub,
    admission: new Admission<FastifyRequest>(options),
    maxRoomsPerStream: options.maxRoomsPerStream,
    retryMs: options.retryMs,
    sendBufferBytes: options.sendBufferBytes
  })

  // end every stream before the server stops listening: server.close() waits for open connections
  app.addHook('preClose', async () => { hub.closeAll() })
  app.addHook('onClose', async () => { hub.closeAll() })
}

export const sseGateway = fp(sseGatewayPlugin, { fastify: '5.x', name: 'fastify-gateways/sse' })
export default sseGateway
