import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A local stand-in for SSLCommerz (sandbox) on 127.0.0.1, at SSLCommerz's own paths:
 * - `POST /gwprocess/v4/api.php`: the session API (checks the store credentials and the parameters SSLCommerz
 *   requires, answers SUCCESS with a `GatewayPageURL` or FAILED with a `failedreason`);
 * - `GET /EasyCheckOut/<sessionkey>`: the hosted payment page, with Pay, Fail and Cancel buttons. A button makes the
 *   transaction, sends the signed IPN to the session's `ipn_url` (server to server, awaited) and then sends the
 *   browser back to the session's success, fail or cancel URL with the same signed form (an auto-submitted POST);
 * - `GET /validator/api/validationserverAPI.php`: the Order Validation API (VALID the first time, VALIDATED after,
 *   INVALID_TRANSACTION for an unknown val_id);
 * - `GET /validator/api/merchantTransIDvalidationAPI.php`: refund, refund status and transaction queries.
 * Every request is recorded with its parameters. Notifications are signed as SSLCommerz signs them (see `sign`).
 */

export const STORE_ID = 'gatew0test01'
/** with characters that break an unencoded query string */
export const STORE_PASSWORD = 'gatew0test01@ssl&pass#1'

export const md5 = (text: string): string => createHash('md5').update(text, 'utf8').digest('hex')

/**
 * `verify_key` (every field but the signature) and `verify_sign` for `fields`, as SSLCommerz computes them: the MD5
 * of the listed fields plus `store_passwd` = MD5(store password), sorted by name, `name=value` joined by `&`.
 */
export function sign (fields: Record<string, string>, storePassword = STORE_PASSWORD, listed?: string[]): Record<string, string> {
  const keys = listed ?? Object.keys(fields).filter((k) => k !== 'verify_sign' && k !== 'verify_key' && k !== 'verify_sign_sha2')
  const data: Record<string, string> = {}
  for (const key of keys) if (key in fields) data[key] = fields[key]
  data.store_passwd = md5(storePassword)
  const text = Object.keys(data).sort().map((key) => `${key}=${data[key]}`).join('&')
  return { ...fields, verify_key: keys.join(','), verify_sign: md5(text), verify_sign_sha2: createHash('sha256').update(text).digest('hex') }
}

export interface FakeRequest {
  method: string
  path: string
  query: Record<string, string>
  form: Record<string, string>
}

export interface FakeSession {
  sessionkey: string
  params: Record<string, string>
}

export interface FakeTransaction {
  tran_id: string
  val_id: string
  bank_tran_id: string
  amount: string
  currency: string
  currency_type: string
  currency_amount: string
  status: string
  card_type: string
  sessionkey: string
  values: Record<string, string>
  validations: number
  refunds: Array<{ refund_ref_id: string, refund_trans_id: string, amount: string }>
}

let seq = 0
const nextId = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++seq).toString(36).padStart(4, '0')}${randomBytes(3).toString('hex')}`.toUpperCase()

/** An IPN for a paid transaction, as SSLCommerz posts it (unsigned: see `sign`). */
export function paidFields (tx: Pick<FakeTransaction, 'tran_id' | 'val_id' | 'bank_tran_id' | 'amount' | 'currency' | 'currency_type' | 'currency_amount' | 'card_type' | 'values'>, status = 'VALID'): Record<string, string> {
  return {
    status,
    tran_date: '2026-12-04 10:00:00',
    tran_id: tx.tran_id,
    val_id: tx.val_id,
    amount: tx.amount,
    store_amount: (Number(tx.amount) * 0.975).toFixed(2),
    currency: tx.currency,
    bank_tran_id: tx.bank_tran_id,
    card_type: tx.card_type,
    card_no: '432149XXXXXX0667',
    card_issuer: 'TRUST BANK, LTD.',
    card_brand: 'VISA',
    card_issuer_country: 'Bangladesh',
    card_issuer_country_code: 'BD',
    currency_type: tx.currency_type,
    currency_amount: tx.currency_amount,
    currency_rate: '1.0000',
    base_fair: '0.00',
    risk_level: '0',
    risk_title: 'Safe',
    error: '',
    ...tx.values
  }
}

/** An IPN for a payment that did not happen (FAILED, CANCELLED, UNATTEMPTED, EXPIRED): no val_id. */
export function unpaidFields (tranId: string, status: string, values: Record<string, string> = {}, amount = '100.00'): Record<string, string> {
  return {
    status,
    tran_date: '2026-12-04 10:00:00',
    tran_id: tranId,
    val_id: '',
    amount,
    currency: 'BDT',
    card_type: '',
    error: status === 'FAILED' ? 'Declined by the issuer' : '',
    ...values
  }
}

const SESSION_REQUIRED = ['tran_id', 'total_amount', 'currency', 'success_url', 'fail_url', 'cancel_url', 'cus_name', 'cus_email',
  'cus_add1', 'cus_city', 'cus_country', 'cus_phone', 'shipping_method', 'product_name', 'product_category', 'product_profile']

export interface FakeOptions {
  storeId?: string
  storePassword?: string
}

export async function startFakeSslcommerz (options: FakeOptions = {}) {
  const storeId = options.storeId ?? STORE_ID
  const storePassword = options.storePassword ?? STORE_PASSWORD
  const requests: FakeRequest[] = []
  const sessions = new Map<string, FakeSession>()
  const transactions = new Map<string, FakeTransaction>()
  const ipnAnswers: Array<{ status: number, body: string }> = []
  const control = {
    /** 'down': the validation API answers 500; 'hang': it never answers; 'up': normal */
    validation: 'up' as 'up' | 'down' | 'hang',
    /** fields the validation API answers differently for a val_id (a tampered IPN, seen from the other side) */
    tamper: new Map<string, Record<string, string>>()
  }
  const hanging = new Set<ServerResponse>()

  const credentialsOk = (q: Record<string, string>) => q.store_id === storeId && q.store_passwd === storePassword
  const json = (res: ServerResponse, body: unknown, status = 200) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }
  const html = (res: ServerResponse, body: string) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>SSLCommerz (fake)</title></head><body>${body}</body></html>`)
  }
  const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

  function session (req: FakeRequest, res: ServerResponse) {
    const f = req.form
    const fail = (failedreason: string) => json(res, { status: 'FAILED', failedreason, sessionkey: '', GatewayPageURL: '' })
    if (!credentialsOk(f)) return fail('Store Credential Error Or Store is De-active')
    const missing = SESSION_REQUIRED.filter((name) => f[name] === undefined || f[name] === '')
    if (missing.length > 0) return fail(`Invalid Information: ${missing.join(', ')} required`)
    if (f.tran_id.length > 30) return fail('Invalid tran_id: at most 30 characters')
    if (!/^\d+\.\d{2}$/.test(f.total_amount)) return fail('Invalid total_amount')
    if (f.currency === 'BDT' && (Number(f.total_amount) < 10 || Number(f.total_amount) > 500_000)) return fail('Invalid amount: 10.00 to 500000.00 BDT')
    if (!/^[A-Z]{3}$/.test(f.currency)) return fail('Invalid currency')
    for (const name of ['success_url', 'fail_url', 'cancel_url', 'ipn_url']) {
      if (f[name] !== undefined && !/^https?:\/\/\S+$/.test(f[name])) return fail(`Invalid ${name}`)
    }
    if (f.shipping_method !== 'NO' && ['num_of_item', 'ship_name', 'ship_add1', 'ship_city', 'ship_postcode', 'ship_country'].some((n) => f[n] === undefined)) {
      return fail('Invalid shipping information')
    }
    const sessionkey = randomBytes(16).toString('hex').toUpperCase()
    sessions.set(sessionkey, { sessionkey, params: { ...f } })
    json(res, {
      status: 'SUCCESS',
      failedreason: '',
      sessionkey,
      gw: { visa: 'city_visa,ebl_visa,visacard', master: 'city_master,ebl_master,mastercard' },
      redirectGatewayURL: `${baseUrl}/gwprocess/v4/bankgw/indexhtml.php?sessionkey=${sessionkey}`,
      GatewayPageURL: `${baseUrl}/EasyCheckOut/${sessionkey}`,
      storeBanner: '', storeLogo: '', desc: [], is_direct_pay_enable: '0'
    })
  }

  /** Makes the transaction of `sessionkey` with `outcome` and returns its signed notification. */
  function complete (sessionkey: string, outcome: 'success' | 'fail' | 'cancel'): { fields: Record<string, string>, session: FakeSession } {
    const s = sessions.get(sessionkey)
    if (s === undefined) throw new Error(`no session ${sessionkey}`)
    const p = s.params
    const values: Record<string, string> = {}
    for (const name of ['value_a', 'value_b', 'value_c', 'value_d']) if (p[name] !== undefined) values[name] = p[name]
    if (outcome !== 'success') {
      return { fields: sign(unpaidFields(p.tran_id, outcome === 'fail' ? 'FAILED' : 'CANCELLED', values, p.total_amount), storePassword), session: s }
    }
    const tx: FakeTransaction = {
      tran_id: p.tran_id,
      val_id: nextId('V'),
      bank_tran_id: nextId('B'),
      amount: p.total_amount,
      currency: 'BDT',
      currency_type: p.currency,
      currency_amount: p.total_amount,
      status: 'VALID',
      card_type: 'VISA-Dutch Bangla',
      sessionkey,
      values,
      validations: 0,
      refunds: []
    }
    transactions.set(tx.val_id, tx)
    return { fields: sign(paidFields(tx), storePassword), session: s }
  }

  async function page (req: FakeRequest, res: ServerResponse, sessionkey: string) {
    const s = sessions.get(sessionkey)
    if (s === undefined) return html(res, '<h1>Session expired</h1>')
    if (req.method === 'GET') {
      const button = (outcome: string, label: string) =>
        `<form method="post" action="/EasyCheckOut/${sessionkey}"><input type="hidden" name="outcome" value="${outcome}"><button id="${outcome}" type="submit">${label}</button></form>`
      return html(res, `<h1>Pay ${escape(s.params.total_amount)} ${escape(s.params.currency)}</h1><p id="tran">${escape(s.params.tran_id)}</p>` +
        button('success', 'Pay') + button('fail', 'Fail') + button('cancel', 'Cancel'))
    }
    const outcome = req.form.outcome === 'fail' ? 'fail' : req.form.outcome === 'cancel' ? 'cancel' : 'success'
    const { fields } = complete(sessionkey, outcome)
    const ipnUrl = s.params.ipn_url
    if (ipnUrl !== undefined) ipnAnswers.push(await postForm(ipnUrl, fields))
    const back = s.params[outcome === 'success' ? 'success_url' : outcome === 'fail' ? 'fail_url' : 'cancel_url']
    const inputs = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`).join('')
    html(res, `<form id="back" method="post" action="${escape(back)}">${inputs}<noscript><button>Continue</button></noscript></form>` +
      '<script>document.getElementById(\'back\').submit()</script>')
  }

  function validation (req: FakeRequest, res: ServerResponse) {
    const q = req.query
    if (control.validation === 'down') return json(res, { error: 'internal error' }, 500)
    if (control.validation === 'hang') { hanging.add(res); return }
    if (q.format !== 'json') return json(res, { error: 'format=json expected' }, 400)
    if (!credentialsOk(q)) return json(res, { APIConnect: 'INVALID_REQUEST', status: 'INVALID_REQUEST' })
    const tx = transactions.get(q.val_id ?? '')
    if (tx === undefined) return json(res, { status: 'INVALID_TRANSACTION', tran_date: '', tran_id: '', val_id: q.val_id ?? '', amount: '', APIConnect: 'DONE' })
    tx.validations++
    json(res, {
      ...paidFields(tx, tx.validations === 1 ? 'VALID' : 'VALIDATED'),
      APIConnect: 'DONE',
      validated_on: '2026-12-04 10:00:05',
      gw_version: '',
      ...control.tamper.get(tx.val_id)
    })
  }

  function merchant (req: FakeRequest, res: ServerResponse) {
    const q = req.query
    if (q.format !== 'json' || q.v !== '1') return json(res, { APIConnect: 'INVALID_REQUEST' })
    if (!credentialsOk(q)) return json(res, { APIConnect: 'INVALID_REQUEST' })
    const all = [...transactions.values()]
    if (q.bank_tran_id !== undefined && q.refund_amount !== undefined) {
      const tx = all.find((t) => t.bank_tran_id === q.bank_tran_id)
      const failed = (errorReason: string) => json(res, { APIConnect: 'DONE', bank_tran_id: q.bank_tran_id, trans_id: '', refund_ref_id: '', status: 'failed', errorReason })
      if (tx === undefined) return failed('Invalid bank_tran_id')
      if (q.refund_remarks === undefined || q.refund_remarks === '' || q.refund_trans_id === undefined) return failed('refund_remarks and refund_trans_id are required')
      const earlier = tx.refunds.find((r) => r.refund_trans_id === q.refund_trans_id)
      const refunded = tx.refunds.reduce((sum, r) => sum + Number(r.amount), 0)
      if (earlier === undefined && refunded + Number(q.refund_amount) > Number(tx.amount)) return failed('Refund amount exceeds the paid amount')
      const refund = earlier ?? { refund_ref_id: nextId('RR'), refund_trans_id: q.refund_trans_id, amount: q.refund_amount }
      if (earlier === undefined) tx.refunds.push(refund)
      return json(res, { APIConnect: 'DONE', bank_tran_id: tx.bank_tran_id, trans_id: tx.tran_id, refund_ref_id: refund.refund_ref_id, status: 'success', errorReason: '' })
    }
    if (q.refund_ref_id !== undefined) {
      const tx = all.find((t) => t.refunds.some((r) => r.refund_ref_id === q.refund_ref_id))
      if (tx === undefined) return json(res, { APIConnect: 'DONE', status: 'failed', errorReason: 'Invalid refund_ref_id' })
      return json(res, {
        APIConnect: 'DONE', bank_tran_id: tx.bank_tran_id, tran_id: tx.tran_id, refund_ref_id: q.refund_ref_id,
        initiated_on: '2026-12-04 11:00:00', refunded_on: '2026-12-04 11:05:00', status: 'refunded', errorReason: ''
      })
    }
    const found = q.tran_id !== undefined
      ? all.filter((t) => t.tran_id === q.tran_id)
      : q.sessionkey !== undefined ? all.filter((t) => t.sessionkey === q.sessionkey) : null
    if (found === null) return json(res, { APIConnect: 'INVALID_REQUEST' })
    json(res, { APIConnect: 'DONE', no_of_trans_found: found.length, element: found.map((t) => ({ ...paidFields(t, t.validations > 0 ? 'VALIDATED' : 'VALID'), validated_on: '' })) })
  }

  const server = createServer((raw: IncomingMessage, res: ServerResponse) => {
    let text = ''
    raw.setEncoding('utf8')
    raw.on('data', (chunk: string) => { text += chunk })
    raw.on('end', () => {
      const url = new URL(raw.url ?? '/', 'http://127.0.0.1')
      const req: FakeRequest = {
        method: raw.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        form: Object.fromEntries(new URLSearchParams(text))
      }
      requests.push(req)
      const checkout = /^\/EasyCheckOut\/([0-9A-F]{32})$/.exec(req.path)
      if (req.method === 'POST' && req.path === '/gwprocess/v4/api.php') return session(req, res)
      if (checkout !== null) return void page(req, res, checkout[1])
      if (req.method === 'GET' && req.path === '/validator/api/validationserverAPI.php') return validation(req, res)
      if (req.method === 'GET' && req.path === '/validator/api/merchantTransIDvalidationAPI.php') return merchant(req, res)
      res.writeHead(404).end('not found')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    baseUrl,
    storeId,
    storePassword,
    requests,
    sessions,
    transactions,
    control,
    /** what the IPN URL answered to each IPN the payment page sent */
    ipnAnswers,
    complete,
    /** a paid transaction made directly (no session), for IPN tests; returns its signed IPN */
    pay (tx: Partial<Pick<FakeTransaction, 'tran_id' | 'amount' | 'currency' | 'currency_type' | 'currency_amount' | 'values'>> = {}) {
      const made: FakeTransaction = {
        tran_id: tx.tran_id ?? nextId('T').slice(0, 24),
        val_id: nextId('V'),
        bank_tran_id: nextId('B'),
        amount: tx.amount ?? '1000.00',
        currency: tx.currency ?? 'BDT',
        currency_type: tx.currency_type ?? tx.currency ?? 'BDT',
        currency_amount: tx.currency_amount ?? tx.amount ?? '1000.00',
        status: 'VALID',
        card_type: 'VISA-Dutch Bangla',
        sessionkey: '',
        values: tx.values ?? {},
        validations: 0,
        refunds: []
      }
      transactions.set(made.val_id, made)
      return { tx: made, fields: sign(paidFields(made), storePassword) }
    },
    /** the validation requests made so far */
    validations: () => requests.filter((r) => r.path === '/validator/api/validationserverAPI.php'),
    close: async () => {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export type FakeSslcommerz = Awaited<ReturnType<typeof startFakeSslcommerz>>

async function postForm (url: string, fields: Record<string, string>): Promise<{ status: number, body: string }> {
  const res = await fetch(url, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual' })
  return { status: res.status, body: await res.text() }
}

/** A form body of `fields`. */
export const formBody = (fields: Record<string, string>): string => new URLSearchParams(fields).toString()
