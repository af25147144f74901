import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type RequestClient from 'twilio/lib/base/RequestClient.js'
import type { TwilioModule } from '../../lib/sms/client.js'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js'
import type { Encoder, Member, RoomEvent } from '../../lib/rooms/types.js'
import { smsGateway, type SmsGatewayOptions } from '../../plugins/sms.js'

export interface FakeTwilioRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  form: Record<string, string>
}

export interface FakeTwilioAnswer {
  status: number
  body: unknown
}

/**
 * A local stand-in for Twilio's REST API (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`), on a loopback
 * port. It records every request and answers like Twilio: 201 with a Message resource, or what `answer` returns
 * (e.g. Twilio's error body). Use `httpClient` so the real twilio client talks to it instead of api.twilio.com.
 */
export async function startFakeTwilio (answer?: (req: FakeTwilioRequest) => FakeTwilioAnswer | undefined) {
  const requests: FakeTwilioRequest[] = []
  let seq = 0
  const server: Server = createServer((req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { text += chunk })
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(text))
      const recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, form }
      requests.push(recorded)
      const custom = answer?.(recorded)
      const match = /^\/2010-04-01\/Accounts\/(AC[0-9a-f]{32})\/Messages\.json$/.exec(recorded.url)
      const result: FakeTwilioAnswer = custom ?? (match === null || req.method !== 'POST'
        ? { status: 404, body: { code: 20404, message: 'The requested resource was not found', more_info: 'https://www.twilio.com/docs/errors/20404', status: 404 } }
        : {
            status: 201,
            body: {
              sid: `SM${(++seq).toString(16).padStart(32, '0')}`,
              account_sid: match[1],
              status: form.MessagingServiceSid === undefined ? 'queued' : 'accepted',
              to: form.To,
              from: form.From ?? null,
              body: form.Body,
              messaging_service_sid: form.MessagingServiceSid ?? null,
              num_segments: '1',
              direction: 'outbound-api',
              api_version: '2010-04-01'
            }
          })
      res.writeHead(result.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(result.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    baseUrl,
    requests,
    /**
     * For the gateway's `httpClient` option: given the twilio module (loaded lazily by the gateway), a
     * `twilio.RequestClient` subclass that sends every request to this server instead of `https://*.twilio.com`.
     */
    httpClient (twilio: TwilioModule): RequestClient {
      class LocalRequestClient extends twilio.RequestClient {
        override request<T> (opts: RequestClient.RequestOptions<T>) {
          return super.request({ ...opts, uri: opts.uri.replace(/^https:\/\/[^/]+/, baseUrl) })
        }
      }
      return new LocalRequestClient()
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

export type FakeTwilio = Awaited<ReturnType<typeof startFakeTwilio>>

// --- Twilio as webhook sender: signed form posts, as Twilio makes them ---

export const TOKEN = 'f00dfeedf00dfeedf00dfeedf00dfeed'
export const ACCOUNT_SID = `AC${'a1'.repeat(16)}`
export const MESSAGE_SID = `SM${'0123456789abcdef'.repeat(2)}`

let sids = 0
/** A fresh message SID: Twilio gives every message its own (a repeated one is a redelivery, which runs nothing). */
export const nextMessageSid = (): string => `SM${(++sids).toString(16).padStart(32, '0')}`

/** An inbound SMS as Twilio posts it, with a fresh MessageSid unless one is given. */
export function inboundParams (overrides: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  const sid = nextMessageSid()
  return {
    ToCountry: 'US',
    ToState: 'CA',
    SmsMessageSid: sid,
    NumMedia: '0',
    ToCity: 'SAN FRANCISCO',
    FromZip: '94105',
    SmsSid: sid,
    FromState: 'CA',
    SmsStatus: 'received',
    FromCity: 'SAN FRANCISCO',
    Body: 'Hello there',
    FromCountry: 'US',
    To: '+15557654321',
    ToZip: '94105',
    NumSegments: '1',
    MessageSid: sid,
    AccountSid: ACCOUNT_SID,
    From: '+15551234567',
    ApiVersion: '2010-04-01',
    ...overrides
  }
}

/** A form body; array values become repeated fields, in the order given. */
export function formBody (params: Record<string, string | string[]>): string {
  const form = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) form.append(name, v)
  }
  return form.toString()
}

export const sign = (url: string, params: Record<string, string | string[]>, token = TOKEN) =>
  getExpectedTwilioSignature(token, url, params)

/** A Fastify app with the sms gateway; `fastify` are Fastify's own options (trustProxy, logger). */
export async function smsApp (options: Partial<SmsGatewayOptions> = {}, fastify: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(fastify)
  await app.register(smsGateway, { authToken: TOKEN, ...options })
  await app.ready()
  return app
}

/** Posts a form to the app, signed for `signedUrl` unless `signature` is given (null: no header). */
export function post (app: FastifyInstance, input: {
  url?: string
  params: Record<string, string | string[]>
  signedUrl?: string
  signature?: string | null
  token?: string
  headers?: Record<string, string>
  remoteAddress?: string
}) {
  const url = input.url ?? '/webhooks/sms'
  const signature = input.signature === undefined
    ? sign(input.signedUrl ?? `http://localhost${url}`, input.params, input.token)
    : input.signature
  return app.inject({
    method: 'POST',
    url,
    ...(input.remoteAddress === undefined ? {} : { remoteAddress: input.remoteAddress }),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(signature === null ? {} : { 'x-twilio-signature': signature }),
      ...input.headers
    },
    payload: formBody(input.params)
  })
}

const identity: Encoder<RoomEvent> = { name: 'test-identity', encode: (ev) => ev }

/** Joins a test member to `room` that records every event it gets. */
export function listen (app: FastifyInstance, room = 'sms') {
  const events: RoomEvent[] = []
  const member: Member<RoomEvent> = {
    id: app.rooms.nextMemberId(),
    user: null,
    transport: 'test',
    encoder: identity,
    deliver (_encoded, ev) { events.push(ev) }
  }
  app.rooms.join(room, member)
  return events
}
