import type { z } from 'zod'
import { GatewayErrors } from '../errors.js'
import {
  RefundAnswerSchema, RefundStatusSchema, SessionAnswerSchema, TransactionQuerySchema, ValidationSchema,
  type RefundAnswer, type RefundStatus, type SessionAnswer, type TransactionQuery, type ValidationAnswer
} from './schemas.js'

export const SANDBOX_URL = 'https://sandbox.sslcommerz.com'
export const LIVE_URL = 'https://securepay.sslcommerz.com'

/** SSLCommerz's own paths under the sandbox, live or configured base. */
export const PATHS = {
  session: '/gwprocess/v4/api.php',
  validation: '/validator/api/validationserverAPI.php',
  merchant: '/validator/api/merchantTransIDvalidationAPI.php'
} as const

export interface SslcommerzApiOptions {
  /** the base URL: SANDBOX_URL, LIVE_URL, or a proxy / local fake */
  baseUrl: string
  storeId: string
  /** the store password: sent to SSLCommerz only, never in an error or a log line */
  storePassword: string
  /** how long one call may take in ms */
  timeoutMs: number
  /** the fetch to use; default the global one */
  fetch?: typeof fetch
}

/**
 * A call to SSLCommerz that failed: unreachable, an HTTP error, an answer that is not JSON or not the expected shape,
 * or an `APIConnect` other than DONE (SSLCommerz's own word: INVALID_REQUEST, FAILED, INACTIVE). 502 when it escapes
 * a route. Never carries the URL (its query string holds the store password).
 */
export type SslcommerzApiError = InstanceType<typeof GatewayErrors.SSLCOMMERZ_API> & { api: string, reason: string }

function apiError (api: string, reason: string, cause?: unknown): SslcommerzApiError {
  const err = new GatewayErrors.SSLCOMMERZ_API(api, reason, cause === undefined ? undefined : { cause })
  return Object.assign(err, { api, reason })
}

export const isApiError = (err: unknown): err is SslcommerzApiError => err instanceof GatewayErrors.SSLCOMMERZ_API

/**
 * SSLCommerz's server-to-server APIs (session, Order Validation, refund, refund status, transaction query) over the
 * platform's fetch, at SSLCommerz's own paths under one base URL, with a timeout per call and the caller's abort
 * signal. Parameters are URL-encoded (a store password with `&` or `#` in it stays whole).
 */
export class SslcommerzApi {
  readonly baseUrl: string
  private readonly storeId: string
  private readonly storePassword: string
  private readonly timeoutMs: number
  private readonly fetch: typeof fetch

  constructor (options: SslcommerzApiOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.storeId = options.storeId
    this.storePassword = options.storePassword
    this.timeoutMs = options.timeoutMs
    this.fetch = options.fetch ?? globalThis.fetch
  }

  /** Opens a payment session; the answer has `GatewayPageURL` (status SUCCESS), or throws with `failedreason`. */
  async createSession (params: Record<string, string>, signal?: AbortSignal): Promise<SessionAnswer> {
    const body = new URLSearchParams({ ...params, store_id: this.storeId, store_passwd: this.storePassword })
    const answer = await this.call('session', PATHS.session, SessionAnswerSchema, { method: 'POST', body }, signal)
    if (answer.status !== 'SUCCESS' || typeof answer.GatewayPageURL !== 'string' || answer.GatewayPageURL === '') {
      throw apiError('session', `session refused: ${answer.failedreason ?? answer.status}`)
    }
    return answer
  }

  /** Asks the Order Validation API about `valId`: VALID, VALIDATED or INVALID_TRANSACTION, with the payment. */
  async validate (valId: string, signal?: AbortSignal): Promise<ValidationAnswer> {
    const answer = await this.call('validation', PATHS.validation, ValidationSchema, { query: { val_id: valId } }, signal)
    if (answer.APIConnect !== undefined && answer.APIConnect !== 'DONE') throw apiError('validation', `APIConnect ${answer.APIConnect}`)
    return answer
  }

  /** Initiates a refund of a payment (by its `bank_tran_id`). */
  async refund (params: { bank_tran_id: string, refund_amount: string, refund_remarks: string, refund_trans_id: string, refe_id?: string },
    signal?: AbortSignal): Promise<RefundAnswer> {
    return await this.merchant('refund', RefundAnswerSchema, params, signal)
  }

  /** The state of a refund request (by the `refund_ref_id` its initiation answered). */
  async refundStatus (refundRefId: string, signal?: AbortSignal): Promise<RefundStatus> {
    return await this.merchant('refund status', RefundStatusSchema, { refund_ref_id: refundRefId }, signal)
  }

  /** Every transaction of one `tran_id` (attempts, the payment, its state). */
  async queryByTranId (tranId: string, signal?: AbortSignal): Promise<TransactionQuery> {
    return await this.merchant('transaction query', TransactionQuerySchema, { tran_id: tranId }, signal)
  }

  /** The transaction of one session (by the `sessionkey` the session API answered). */
  async queryBySessionKey (sessionKey: string, signal?: AbortSignal): Promise<TransactionQuery> {
    return await this.merchant('transaction query', TransactionQuerySchema, { sessionkey: sessionKey }, signal)
  }

  private async merchant<S extends z.ZodType<{ APIConnect: string }>> (api: string, schema: S, query: Record<string, string | undefined>,
    signal?: AbortSignal): Promise<z.output<S>> {
    const answer = await this.call(api, PATHS.merchant, schema, { query }, signal)
    if (answer.APIConnect !== 'DONE') throw apiError(api, `APIConnect ${answer.APIConnect}`)
    return answer
  }

  private async call<S extends z.ZodType> (api: string, path: string, schema: S,
    request: { method?: 'GET' | 'POST', query?: Record<string, string | undefined>, body?: URLSearchParams },
    signal?: AbortSignal): Promise<z.output<S>> {
    const url = new URL(this.baseUrl + path)
    if (request.body === undefined) {
      for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) url.searchParams.set(name, value)
      url.searchParams.set('store_id', this.storeId)
      url.searchParams.set('store_passwd', this.storePassword)
      url.searchParams.set('v', '1')
      url.searchParams.set('format', 'json')
    }
    const timeout = AbortSignal.timeout(this.timeoutMs)
    let response: Response
    try {
      response = await this.fetch(url, {
        method: request.method ?? 'GET',
        body: request.body,
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout])
      })
    } catch (err) {
      const reason = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : signal?.aborted === true ? 'aborted' : 'unreachable'
      throw apiError(api, reason, errorCause(err))
    }
    let text: string
    try {
      text = await response.text()
    } catch (err) {
      throw apiError(api, 'the answer broke off', errorCause(err))
    }
    if (!response.ok) throw apiError(api, `HTTP ${response.status}`)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw apiError(api, 'the answer is not JSON')
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success) throw apiError(api, 'the answer is not the expected shape')
    return parsed.data
  }
}

/** What a failed fetch says (its code, its message), without the request (whose URL holds the store password). */
function errorCause (err: unknown): Error {
  const cause = (err as { cause?: { code?: unknown, message?: unknown } } | null)?.cause
  const code = typeof cause?.code === 'string' ? cause.code : undefined
  const message = err instanceof Error ? err.message : String(err)
  return Object.assign(new Error(code === undefined ? message : `${message} (${code})`), code === undefined ? {} : { code })
}
