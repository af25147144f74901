import { GatewayErrors } from '../errors.js'
import { formatIssues } from '../options.js'
import type { FormFields } from '../webhooks/form.js'
import { sameAmount } from './amount.js'
import { isApiError, type SslcommerzApi } from './api.js'
import { checkSign, signedNames } from './hash.js'
import {
  NotificationSchema, isPaid, isUnpaid, type SslcommerzNotification, type ValidationAnswer
} from './schemas.js'

/** The host's own record of an order: what it expects to be paid. */
export interface OrderAmount {
  amount: string | number
  /** ISO code; default BDT */
  currency?: string
}

/** `loadOrder(tranId)`: the host's order of that `tran_id`, or null/undefined when it knows none. */
export type LoadOrder = (tranId: string) => Promise<OrderAmount | null | undefined> | OrderAmount | null | undefined

export interface NotificationVerifierOptions {
  /** hex MD5 of the store password: what SSLCommerz signs with (a secret: it signs notifications as well) */
  storePasswordMd5: string
  api: Pick<SslcommerzApi, 'validate'>
  loadOrder?: LoadOrder
}

/** A notification that passed every check: a payment (VALID/VALIDATED, with its validation) or a payment that was not. */
export type VerifiedNotification =
  | { paid: true, notification: SslcommerzNotification, validation: ValidationAnswer }
  | { paid: false, notification: SslcommerzNotification }

/** The fields a handler and the published event rely on: a valid `verify_sign` must vouch for each one present. */
const RELIED_ON = ['status', 'tran_id', 'val_id', 'amount', 'currency', 'card_type', 'value_a', 'value_b', 'value_c', 'value_d']

const refuse = <E extends Error>(err: E, reason: string): E & { reason: string } => Object.assign(err, { reason })

/** A form's fields as PHP reads them (the last value of a repeated name), empty ones left out of the result later. */
export function formValues (form: FormFields): Record<string, string> {
  const out: Record<string, string> = Object.create(null)
  for (const [name, value] of Object.entries(form)) out[name] = typeof value === 'string' ? value : value[value.length - 1]
  return out
}

/**
 * Checks an IPN (or the form SSLCommerz posts to the success, fail and cancel URLs) as SSLCommerz prescribes, and
 * resolves to it, or throws a coded error the pipeline answers with:
 *
 * 1. `verify_sign` must be SSLCommerz's MD5 over the fields `verify_key` lists plus the MD5 of the store password
 *    (GW_SSLCOMMERZ_SIGNATURE, 400), and must cover every field this gateway relies on;
 * 2. the fields must make a notification (GW_SSLCOMMERZ_BAD_REQUEST, 400);
 * 3. FAILED, CANCELLED, UNATTEMPTED and EXPIRED stop here (the validation API knows no `val_id` for them);
 * 4. any other status needs a `val_id` the Order Validation API answers VALID or VALIDATED for, with the same
 *    `tran_id`, amount (to the cent) and currency (GW_SSLCOMMERZ_INVALID, 400); an API that cannot be reached or
 *    answers an error is GW_SSLCOMMERZ_UNAVAILABLE (503: SSLCommerz retries);
 * 5. with `loadOrder`, the host's order of that `tran_id` must exist and ask for what was paid (in the currency of
 *    the session: `currency_type`/`currency_amount` when SSLCommerz converted it); a lookup that throws is
 *    GW_SSLCOMMERZ_ORDER_LOOKUP (503).
 */
export async function verifyNotification (form: FormFields, options: NotificationVerifierOptions,
  signal?: AbortSignal): Promise<VerifiedNotification> {
  const fields = formValues(form)
  const sign = checkSign(fields, options.storePasswordMd5)
  if (sign === 'missing') throw refuse(new GatewayErrors.SSLCOMMERZ_SIGNATURE('missing verify_sign or verify_key'), 'missing')
  if (sign === 'mismatch') throw refuse(new GatewayErrors.SSLCOMMERZ_SIGNATURE('verify_sign does not match'), 'mismatch')
  const signed = signedNames(fields)
  for (const name of RELIED_ON) {
    if (fields[name] !== undefined && fields[name] !== '' && !signed.has(name)) {
      throw refuse(new GatewayErrors.SSLCOMMERZ_SIGNATURE(`${name} is not covered by verify_sign`), 'uncovered')
    }
  }
  const present: Record<string, string> = {}
  for (const [name, value] of Object.entries(fields)) {
    if (value !== '' && name !== 'verify_sign' && name !== 'verify_sign_sha2') present[name] = value
  }
  const parsed = NotificationSchema.safeParse(present)
  if (!parsed.success) {
    throw refuse(new GatewayErrors.SSLCOMMERZ_BAD_REQUEST(formatIssues(parsed.error.issues, { unknown: 'key' })), 'fields')
  }
  const notification = parsed.data
  if (isUnpaid(notification.status)) return { paid: false, notification }

  const valId = notification.val_id
  if (valId === undefined) throw refuse(new GatewayErrors.SSLCOMMERZ_BAD_REQUEST(`val_id is required with status ${notification.status}`), 'fields')
  let validation: ValidationAnswer
  try {
    validation = await options.api.validate(valId, signal)
  } catch (err) {
    if (!isApiError(err)) throw err
    throw new GatewayErrors.SSLCOMMERZ_UNAVAILABLE(err.reason, { cause: err })
  }
  const invalid = (reason: string, what: string) => refuse(new GatewayErrors.SSLCOMMERZ_INVALID(what), reason)
  if (!isPaid(validation.status)) throw invalid('not-valid', `the validation API answered ${validation.status}`)
  if (validation.tran_id !== notification.tran_id) throw invalid('mismatch', 'tran_id does not match the validated payment')
  if (!sameAmount(validation.amount, notification.amount)) throw invalid('mismatch', 'amount does not match the validated payment')
  if (validation.currency === undefined || validation.currency !== notification.currency) {
    throw invalid('mismatch', 'currency does not match the validated payment')
  }
  if (options.loadOrder !== undefined) {
    let order: OrderAmount | null | undefined
    try {
      order = await options.loadOrder(notification.tran_id)
    } catch (err) {
      throw new GatewayErrors.SSLCOMMERZ_ORDER_LOOKUP(JSON.stringify(notification.tran_id), { cause: err })
    }
    if (order === null || order === undefined) throw invalid('unknown-order', `no order ${JSON.stringify(notification.tran_id)}`)
    // the session's own currency and amount, before any conversion to BDT
    const paidAmount = validation.currency_amount ?? validation.amount
    const paidCurrency = validation.currency_type ?? validation.currency
    if (!sameAmount(String(order.amount), paidAmount)) throw invalid('order-mismatch', 'the amount paid is not the order\'s')
    if ((order.currency ?? 'BDT') !== paidCurrency) throw invalid('order-mismatch', 'the currency paid is not the order\'s')
  }
  return { paid: true, notification, validation }
}

/** The dedupe key of a notification: its `val_id`, else its `tran_id` and status. */
export function notificationKey (notification: SslcommerzNotification): string {
  return notification.val_id !== undefined ? `val:${notification.val_id}` : `tran:${notification.tran_id}:${notification.status}`
}
