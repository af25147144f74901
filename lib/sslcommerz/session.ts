import { GatewayErrors } from '../errors.js'
import { formatIssues } from '../options.js'
import { formatAmount } from './amount.js'
import { SessionInputSchema, type SessionInput } from './schemas.js'

/** Where SSLCommerz sends the buyer (and the IPN) when a session does not say: `publicUrl` plus the gateway's paths. */
export interface SessionDefaults {
  successUrl?: string
  failUrl?: string
  cancelUrl?: string
  ipnUrl?: string
}

/**
 * The session API's parameters (SSLCommerz's names) for `input`, or throws GW_SSLCOMMERZ_INVALID_REQUEST (400) for
 * invalid input and GW_SSLCOMMERZ_NOT_CONFIGURED when no return URL is known (set `publicUrl`, or pass them).
 * Without an IPN URL, SSLCommerz posts to the one set in the merchant panel.
 */
export function sessionParams (input: SessionInput, defaults: SessionDefaults): Record<string, string> {
  const parsed = SessionInputSchema.safeParse(input)
  if (!parsed.success) throw new GatewayErrors.SSLCOMMERZ_INVALID_REQUEST(formatIssues(parsed.error.issues, { unknown: 'key' }))
  const s = parsed.data
  const amount = formatAmount(s.amount)
  if (amount === null) throw new GatewayErrors.SSLCOMMERZ_INVALID_REQUEST('amount: must be a positive amount with at most two decimals')
  const urls = {
    success_url: s.successUrl ?? defaults.successUrl,
    fail_url: s.failUrl ?? defaults.failUrl,
    cancel_url: s.cancelUrl ?? defaults.cancelUrl
  }
  for (const [name, url] of Object.entries(urls)) {
    if (url === undefined) throw new GatewayErrors.SSLCOMMERZ_NOT_CONFIGURED(`no ${name}: set publicUrl (PUBLIC_URL) or pass it`)
  }
  const out: Record<string, string | undefined> = {
    ...s.extra,
    tran_id: s.tranId,
    total_amount: amount,
    currency: s.currency,
    ...urls,
    ipn_url: s.ipnUrl ?? defaults.ipnUrl,
    product_name: s.product.name,
    product_category: s.product.category,
    product_profile: s.product.profile,
    cus_name: s.customer.name,
    cus_email: s.customer.email,
    cus_phone: s.customer.phone,
    cus_add1: s.customer.address,
    cus_add2: s.customer.address2,
    cus_city: s.customer.city,
    cus_state: s.customer.state,
    cus_postcode: s.customer.postcode,
    cus_country: s.customer.country,
    shipping_method: s.shipping?.method ?? 'NO',
    num_of_item: s.shipping === undefined ? undefined : String(s.shipping.items),
    ship_name: s.shipping?.name,
    ship_add1: s.shipping?.address,
    ship_city: s.shipping?.city,
    ship_postcode: s.shipping?.postcode,
    ship_country: s.shipping?.country,
    value_a: s.userId,
    value_b: s.valueB,
    value_c: s.valueC,
    value_d: s.valueD
  }
  const params: Record<string, string> = {}
  for (const [name, value] of Object.entries(out)) if (value !== undefined) params[name] = value
  return params
}
