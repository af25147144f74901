import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RoomRegistry } from '../lib/rooms/registry.js'
import type { RoomEvent } from '../lib/rooms/types.js'
import { parseForm } from '../lib/webhooks/form.js'
import {
  SslcommerzApi, checkSign, expectedSign, formValues, formatAmount, md5Hex, notificationKey, publishSslcommerzEvent,
  sameAmount, sessionParams, signedNames, toHundredths, verifyNotification, type SslcommerzNotification
} from '../lib/sslcommerz/index.js'
import { requireTool } from './helpers/tools.js'
import { STORE_PASSWORD, formBody, md5, paidFields, sign, unpaidFields } from './helpers/fake-sslcommerz.js'

t.test('amounts: hundredths, equality to two places, the session format', async (t) => {
  t.equal(toHundredths('1000'), 100000n)
  t.equal(toHundredths('1000.00'), 100000n)
  t.equal(toHundredths('0.5'), 50n)
  t.equal(toHundredths('10.005'), 1001n, 'half up at the third decimal')
  t.equal(toHundredths('10.004'), 1000n)
  t.equal(toHundredths(' 7.10 '), 710n)
  for (const bad of ['', '-1', '1e3', '1,000.00', '.5', '1.', 'abc', '1'.repeat(16)]) t.equal(toHundredths(bad), null, JSON.stringify(bad))
  t.ok(sameAmount('1000', '1000.00'))
  t.ok(sameAmount('99.9', '99.90'))
  t.notOk(sameAmount('99.9', '99.91'))
  t.notOk(sameAmount('abc', 'abc'), 'two unreadable amounts are not equal')
  t.notOk(sameAmount(undefined, '1'))
  t.notOk(sameAmount('1', undefined))
  t.equal(formatAmount(100), '100.00')
  t.equal(formatAmount(19.99 * 3), '59.97')
  t.equal(formatAmount('0500.5'), '500.50')
  for (const bad of [0, -1, 10.005, Infinity, Number.NaN, 1e10, '0.00', '10.005', '1e3', 'ten']) t.equal(formatAmount(bad), null, String(bad))
})

t.test('verify_sign: the listed fields present plus MD5(store password), sorted by name, MD5 of name=value&...', async (t) => {
  const pwMd5 = md5Hex('pw')
  t.equal(pwMd5, md5('pw'))
  const fields = { verify_key: 'tran_id,amount,missing,status', tran_id: 'T1', amount: '10.00', status: 'VALID', unlisted: 'x' }
  t.equal(expectedSign(fields, pwMd5), md5Hex(`amount=10.00&status=VALID&store_passwd=${pwMd5}&tran_id=T1`))
  t.equal(expectedSign({ tran_id: 'T1' }, pwMd5), null, 'no verify_key')
  t.equal(expectedSign({ verify_key: '' }, pwMd5), null)
  const signed = { ...fields, verify_sign: expectedSign(fields, pwMd5) as string }
  t.equal(checkSign(signed, pwMd5), 'ok')
  t.equal(checkSign({ ...signed, unlisted: 'changed' }, pwMd5), 'ok', 'a field verify_key does not list is not covered')
  t.equal(checkSign({ ...signed, amount: '11.00' }, pwMd5), 'mismatch')
  t.equal(checkSign({ ...signed, verify_sign: 'short' }, pwMd5), 'mismatch')
  t.equal(checkSign({ ...fields }, pwMd5), 'missing')
  t.same([...signedNames(fields)], ['tran_id', 'amount', 'missing', 'status'])
  t.same([...signedNames({ verify_key: 'a,,b' })], ['a', 'b'])
  t.same([...signedNames({})], [])
})

t.test('the hash matches SSLCommerz\'s own PHP function (SSLCOMMERZ_hash_varify) on tricky forms', async (t) => {
  const php = requireTool(t, 'php')
  if (php === null) return
  // SSLCommerz's PHP library: the listed keys present in $_POST, plus store_passwd = md5(password), ksort, join, md5.
  const script = `<?php
$in = json_decode(stream_get_contents(STDIN), true);
$out = [];
foreach ($in['forms'] as $body) {
  parse_str($body, $post);
  $keys = explode(',', $post['verify_key'] ?? '');
  $data = [];
  foreach ($keys as $key) { if (isset($post[$key])) { $data[$key] = $post[$key]; } }
  $data['store_passwd'] = md5($in['password']);
  ksort($data);
  $text = '';
  foreach ($data as $key => $value) { $text .= $key . '=' . $value . '&'; }
  $text = rtrim($text, '&');
  $out[] = ['sign' => md5($text), 'valid' => isset($post['verify_sign']) && md5($text) === $post['verify_sign']];
}
echo json_encode($out);
`
  const tricky = {
    ...paidFields({
      tran_id: 'ORDER-ÄÖ-১২৩', val_id: 'V1', bank_tran_id: 'B1', amount: '1000', currency: 'BDT', currency_type: 'BDT',
      currency_amount: '1000.00', card_type: 'BKASH-BKash', values: { value_a: 'user 7 & co', value_b: 'a=b&c=d', value_c: '', value_d: '😀' }
    }),
    Zeta: 'capital letters sort first',
    risk_title: 'Safe+Sound %20'
  }
  const forms: string[] = [
    formBody(sign(tricky, STORE_PASSWORD)),
    formBody(sign(unpaidFields('ORDER-F', 'FAILED'), STORE_PASSWORD)),
    // verify_key listing a field that is absent, a field twice, and store_passwd itself
    formBody(sign({ status: 'VALID', tran_id: 'T', amount: '5' }, STORE_PASSWORD, ['status', 'tran_id', 'absent', 'tran_id', 'store_passwd', 'amount'])),
    // a repeated field: PHP keeps the last value, so does the gateway
    `${formBody(sign({ status: 'VALID', tran_id: 'T2', amount: '7.00' }, STORE_PASSWORD))}&amount=8.00`,
    formBody({ ...sign(tricky, STORE_PASSWORD), amount: '1.00' }),
    formBody(sign(tricky, 'another password'))
  ]
  const reference = JSON.parse(await runPhp(php, script, JSON.stringify({ forms, password: STORE_PASSWORD }))) as Array<{ sign: string, valid: boolean }>
  t.equal(reference.length, forms.length)
  const pwMd5 = md5Hex(STORE_PASSWORD)
  for (const [i, body] of forms.entries()) {
    const fields = formValues(parseForm(body))
    t.equal(expectedSign(fields, pwMd5), reference[i].sign, `form ${i}: the same verify_sign as PHP`)
    t.equal(checkSign(fields, pwMd5) === 'ok', reference[i].valid, `form ${i}: the same verdict as PHP (${String(reference[i].valid)})`)
  }
  t.same(reference.map((r) => r.valid), [true, true, true, false, false, false])
})

/** Runs `php` on `script` (a temporary file) with `input` on its stdin; resolves to its stdout. */
async function runPhp (php: string, script: string, input: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sslcz-php-'))
  try {
    await writeFile(join(dir, 'hash.php'), script)
    const child = spawn(php, ['-d', 'display_errors=stderr', join(dir, 'hash.php')], { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    child.stdin.end(input)
    const code = await new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('close', resolve) })
    if (code !== 0) throw new Error(`php exited with ${String(code)}`)
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

t.test('notificationKey: the val_id, else the tran_id and status', async (t) => {
  t.equal(notificationKey({ status: 'VALID', tran_id: 'T', val_id: 'V' } as SslcommerzNotification), 'val:V')
  t.equal(notificationKey({ status: 'FAILED', tran_id: 'T' } as SslcommerzNotification), 'tran:T:FAILED')
})

t.test('verifyNotification passes an unexpected error of the validation call on as it is', async (t) => {
  const fields = sign(paidFields({ tran_id: 'T', val_id: 'V', bank_tran_id: 'B', amount: '1', currency: 'BDT', currency_type: 'BDT', currency_amount: '1', card_type: 'x', values: {} }))
  const bug = new TypeError('a bug')
  await t.rejects(verifyNotification(parseForm(formBody(fields)), { storePasswordMd5: md5Hex(STORE_PASSWORD), api: { validate: async () => { throw bug } } }), bug)
})

t.test('publishing: a value_a that makes no room name is skipped with a warning; the room is an option', async (t) => {
  const rooms = new RoomRegistry()
  t.after(() => rooms.close())
  const got: RoomEvent[] = []
  rooms.join('payments', { id: rooms.nextMemberId(), user: null, transport: 't', encoder: { name: 't', encode: (e) => e }, deliver: (_e, ev) => { got.push(ev) } })
  const warnings: string[] = []
  const notification = { status: 'VALID', tran_id: 'T', value_a: 'not a room name' } as SslcommerzNotification
  t.same(await publishSslcommerzEvent(rooms, notification, { warn: (_o, msg) => { warnings.push(msg) } }, 'payments'), ['payments'])
  t.match(warnings, [/not a legal user room name/])
  t.same(await publishSslcommerzEvent(rooms, notification), ['sslcommerz'], 'no logger: skipped silently')
  t.equal(got[0].event, 'sslcommerz.valid')
})

t.test('sessionParams: shipping and the extra parameters; core parameters cannot be overridden by extra', async (t) => {
  const params = sessionParams({
    tranId: 'T', amount: '10', product: { name: 'p', category: 'c' },
    customer: { name: 'n', email: 'n@example.com', phone: '1', address: 'a', address2: 'b', city: 'c', state: 's', postcode: '1' },
    extra: { tran_id: 'OTHER', emi_option: '0' }
  }, { successUrl: 'https://x/s', failUrl: 'https://x/f', cancelUrl: 'https://x/c' })
  t.match(params, { tran_id: 'T', emi_option: '0', cus_add2: 'b', cus_state: 's', total_amount: '10.00' })
  t.notOk('ipn_url' in params)
})

t.test('the API client: answers that are no JSON, the wrong shape, a broken connection or an aborted call', async (t) => {
  let mode = 'not-json'
  const server = createServer((req, res) => {
    if (mode === 'broken') { res.writeHead(200, { 'content-length': '100' }); res.write('{"status"'); setImmediate(() => res.destroy()); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    if (mode === 'not-json') res.end('<html>maintenance</html>')
    else if (mode === 'shape') res.end('{"APIConnect":42}')
    else if (mode === 'no-url') res.end('{"status":"SUCCESS","GatewayPageURL":""}')
    else if (mode === 'slow') setTimeout(() => res.end('{}'), 5000).unref()
    else res.end('{}')
    req.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.closeAllConnections(); server.close() })
  const api = new SslcommerzApi({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, storeId: 's', storePassword: 'secret&pw', timeoutMs: 2000 })
  await t.rejects(api.queryByTranId('T'), { code: 'GW_SSLCOMMERZ_API', message: 'SSLCommerz transaction query: the answer is not JSON' })
  mode = 'shape'
  await t.rejects(api.refundStatus('R'), { message: /refund status: the answer is not the expected shape/ })
  mode = 'no-url'
  await t.rejects(api.createSession({ tran_id: 'T' }), { message: /session refused: SUCCESS/ })
  mode = 'broken'
  await t.rejects(api.validate('V'), { message: /validation: the answer broke off/ })
  mode = 'slow'
  const controller = new AbortController()
  const call = api.validate('V', controller.signal)
  controller.abort()
  await t.rejects(call, { message: /validation: aborted/ })
})
