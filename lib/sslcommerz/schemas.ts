import { z } from 'zod'
import { isRoomName } from '../rooms/names.js'

/**
 * SSLCommerz's shapes, with SSLCommerz's own field names (developer.sslcommerz.com, API v4), so what a host reads
 * in a handler is what the SSLCommerz documentation describes.
 */

/** Statuses an IPN reports as a payment: checked with the Order Validation API before anything runs. */
export const PAID_STATUSES = ['VALID', 'VALIDATED'] as const
/** Statuses of a payment that did not happen: the validation API knows no `val_id` for them; verified by hash only. */
export const UNPAID_STATUSES = ['FAILED', 'CANCELLED', 'UNATTEMPTED', 'EXPIRED'] as const
export type PaidStatus = typeof PAID_STATUSES[number]
export type UnpaidStatus = typeof UNPAID_STATUSES[number]
export type NotificationStatus = PaidStatus | UnpaidStatus

export const isPaid = (status: string): status is PaidStatus => (PAID_STATUSES as readonly string[]).includes(status)
export const isUnpaid = (status: string): status is UnpaidStatus => (UNPAID_STATUSES as readonly string[]).includes(status)

const text = z.string()
const optional = z.string().optional()

/**
 * An IPN (and the form SSLCommerz posts to the success, fail and cancel URLs), after its `verify_sign` was checked.
 * Every posted field stays (a loose object); `verify_sign` and `verify_sign_sha2` are removed (only the check needs
 * them). Empty values are absent.
 */
export const NotificationSchema = z.looseObject({
  status: text.regex(/^[A-Z_]{1,32}$/, { error: 'must be an SSLCommerz status such as VALID or FAILED' }),
  tran_id: text.min(1).max(255),
  val_id: optional,
  amount: optional,
  currency: optional,
  store_amount: optional,
  card_type: optional,
  card_no: optional,
  card_issuer: optional,
  card_brand: optional,
  bank_tran_id: optional,
  tran_date: optional,
  error: optional,
  currency_type: optional,
  currency_amount: optional,
  currency_rate: optional,
  risk_level: optional,
  risk_title: optional,
  value_a: optional,
  value_b: optional,
  value_c: optional,
  value_d: optional,
  verify_key: optional
})
export type SslcommerzNotification = z.output<typeof NotificationSchema>

/**
 * The Order Validation API's answer (`/validator/api/validationserverAPI.php`). `status` is VALID (first
 * validation), VALIDATED (asked before) or INVALID_TRANSACTION.
 */
export const ValidationSchema = z.looseObject({
  status: text.min(1),
  tran_id: optional,
  val_id: optional,
  amount: optional,
  store_amount: optional,
  currency: optional,
  currency_type: optional,
  currency_amount: optional,
  bank_tran_id: optional,
  card_type: optional,
  tran_date: optional,
  risk_level: optional,
  risk_title: optional,
  value_a: optional,
  value_b: optional,
  value_c: optional,
  value_d: optional,
  APIConnect: optional,
  validated_on: optional
})
export type ValidationAnswer = z.output<typeof ValidationSchema>

/** The session API's answer (`/gwprocess/v4/api.php`). */
export const SessionAnswerSchema = z.looseObject({
  status: text,
  failedreason: optional,
  sessionkey: optional,
  GatewayPageURL: optional
})
export type SessionAnswer = z.output<typeof SessionAnswerSchema>

/** The merchant transaction API's answers (`/validator/api/merchantTransIDvalidationAPI.php`). */
export const RefundAnswerSchema = z.looseObject({
  APIConnect: text,
  status: optional,
  bank_tran_id: optional,
  trans_id: optional,
  refund_ref_id: optional,
  errorReason: optional
})
export type RefundAnswer = z.output<typeof RefundAnswerSchema>

export const RefundStatusSchema = z.looseObject({
  APIConnect: text,
  status: optional,
  bank_tran_id: optional,
  tran_id: optional,
  refund_ref_id: optional,
  initiated_on: optional,
  refunded_on: optional,
  errorReason: optional
})
export type RefundStatus = z.output<typeof RefundStatusSchema>

export const TransactionSchema = z.looseObject({
  status: text,
  tran_id: optional,
  val_id: optional,
  amount: optional,
  currency: optional,
  bank_tran_id: optional,
  tran_date: optional
})
export const TransactionQuerySchema = z.looseObject({
  APIConnect: text,
  no_of_trans_found: z.union([z.number(), z.string()]).optional(),
  element: z.array(TransactionSchema).default([])
})
export type TransactionQuery = z.output<typeof TransactionQuerySchema>
export type Transaction = z.output<typeof TransactionSchema>

const field = (max: number) => z.string().trim().min(1).max(max)
const amountInput = z.union([z.number(), z.string()], { error: 'must be a number or a decimal string' })
const absoluteUrl = z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' })

/** What `app.sslcommerz.createSession()` takes; the names are SSLCommerz's session parameters in camelCase. */
export const SessionInputSchema = z.strictObject({
  /** your unique id of this payment (order id), at most 30 characters: every notification carries it */
  tranId: field(30),
  /** the amount to pay, at most two decimals (SSLCommerz: 10.00 to 500000.00 BDT) */
  amount: amountInput,
  /** ISO currency code; another currency than BDT is converted by SSLCommerz */
  currency: z.string().regex(/^[A-Z]{3}$/, { error: 'must be a three-letter currency code such as BDT' }).default('BDT'),
  /** the buyer's user id: sent as `value_a`, so every event of this payment also reaches room `user:<userId>` */
  userId: z.string().refine((v) => isRoomName(`user:${v}`), { error: 'must make a legal room name user:<userId>' }).optional(),
  /** free fields that come back in every notification (`value_b`..`value_d`) */
  valueB: field(255).optional(),
  valueC: field(255).optional(),
  valueD: field(255).optional(),
  product: z.strictObject({
    name: field(255),
    category: field(100),
    /** general, physical-goods, non-physical-goods, airline-tickets, travel-vertical, telecom-vertical */
    profile: field(100).default('general')
  }),
  customer: z.strictObject({
    name: field(50),
    email: z.email({ error: 'must be an email address' }),
    phone: field(20),
    address: field(50),
    address2: field(50).optional(),
    city: field(50),
    state: field(50).optional(),
    postcode: field(30).optional(),
    country: field(50).default('Bangladesh')
  }),
  /** physical goods: where they go (SSLCommerz requires these when shipping) */
  shipping: z.strictObject({
    method: field(50),
    items: z.number().int().min(1),
    name: field(50),
    address: field(50),
    city: field(50),
    postcode: field(50),
    country: field(50).default('Bangladesh')
  }).optional(),
  /** where SSLCommerz returns the buyer and posts the IPN; default `publicUrl` plus the gateway's own paths */
  successUrl: absoluteUrl.optional(),
  failUrl: absoluteUrl.optional(),
  cancelUrl: absoluteUrl.optional(),
  ipnUrl: absoluteUrl.optional(),
  /** any other session parameter by SSLCommerz's own name (`multi_card_name`, `emi_option`, ...) */
  extra: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { error: 'must be an SSLCommerz parameter name' }), z.string()).optional()
})
export type SessionInput = z.input<typeof SessionInputSchema>

/** What `app.sslcommerz.refund()` takes. */
export const RefundInputSchema = z.strictObject({
  /** the payment's `bank_tran_id` (from its notification or the validation answer) */
  bankTranId: field(80),
  /** how much to give back, at most the amount paid */
  amount: amountInput,
  /** why, for the buyer's bank statement */
  remarks: field(255),
  /** your unique id of this refund request, so a retried request is not refunded twice; default a random one */
  refundTransId: field(30).optional(),
  /** your reference for it */
  refeId: field(50).optional()
})
export type RefundInput = z.input<typeof RefundInputSchema>
