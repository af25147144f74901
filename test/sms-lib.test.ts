import t from 'tap'
import { getExpectedTwilioSignature, validateRequest } from 'twilio/lib/webhooks/webhooks.js'
import { parseForm } from '../lib/webhooks/form.js'
import { normalizePublicUrl } from '../lib/webhooks/public-url.js'
import { firstEntry, webhookUrl } from '../lib/sms/url.js'
import { verifyTwilioSignature } from '../lib/sms/signature.js'
import { escapeXml, messagingResponse } from '../lib/sms/twiml.js'
import { InboundSmsSchema, isE164, SmsStatusSchema } from '../lib/sms/schemas.js'

t.test('parseForm decodes fields and keeps repeated names as arrays, without a prototype', async (t) => {
  const form = parseForm('Body=Hi+there%21&Tag=a&Tag=b&Tag=c&__proto__=x&Empty=')
  t.equal(form.Body, 'Hi there!')
  t.same(form.Tag, ['a', 'b', 'c'])
  t.equal(form.__proto__, 'x')
  t.equal(form.Empty, '')
  t.equal(Object.getPrototypeOf(form), null)
  t.same(Object.keys(parseForm('')), [])
})

t.test('firstEntry takes the first hop of a proxy list', async (t) => {
  t.equal(firstEntry('https, http'), 'https')
  t.equal(firstEntry(' a.example ,b'), 'a.example')
  t.equal(firstEntry(['x, y', 'z']), 'x')
  t.equal(firstEntry(''), undefined)
  t.equal(firstEntry(', b'), undefined)
  t.equal(firstEntry(undefined), undefined)
})

t.test('webhookUrl rebuilds the URL Twilio requested', async (t) => {
  const base = { target: '/webhooks/sms?a=1', trusted: false, encrypted: false }
  t.equal(webhookUrl({ ...base, headers: { host: 'h.example' } }), 'http://h.example/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, encrypted: true, headers: { host: 'h.example:8443' } }), 'https://h.example:8443/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, headers: { host: 'h.example', 'x-forwarded-proto': 'https' } }), 'http://h.example/webhooks/sms?a=1',
    'forwarded headers of an untrusted peer are ignored')
  t.equal(webhookUrl({ ...base, trusted: true, headers: { host: 'in', 'x-forwarded-proto': 'HTTPS, http', 'x-forwarded-host': 'p.example, in' } }),
    'https://p.example/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, trusted: true, headers: { host: 'in', 'x-forwarded-proto': 'https', 'x-forwarded-port': '443' } }),
    'https://in/webhooks/sms?a=1', 'a default X-Forwarded-Port adds nothing')
  t.equal(webhookUrl({ ...base, trusted: true, headers: { host: 'in:81', 'x-forwarded-port': '8080' } }),
    'http://in:81/webhooks/sms?a=1', 'a host with a port keeps it')
  t.equal(webhookUrl({ ...base, trusted: true, headers: { host: 'in', 'x-forwarded-port': 'abc' } }), 'http://in/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, headers: { host: '[::1]:3000' } }), 'http://[::1]:3000/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, publicUrl: 'https://pub.example/x', headers: {} }), 'https://pub.example/x/webhooks/sms?a=1')
  t.equal(webhookUrl({ ...base, target: 'http://h.example/p?q=1', headers: { host: 'h.example' } }), 'http://h.example/p?q=1',
    'an absolute-form target is reduced to its path and query')
  t.equal(webhookUrl({ ...base, target: '*', headers: { host: 'h.example' } }), 'http://h.example/*')
  t.equal(webhookUrl({ ...base, headers: {} }), null, 'no Host')
  t.equal(webhookUrl({ ...base, headers: { host: 'evil.example/x?' } }), null, 'a Host that is not a host')
  t.equal(webhookUrl({ ...base, trusted: true, headers: { host: 'h', 'x-forwarded-proto': 'gopher' } }), null)
})

t.test('normalizePublicUrl accepts an http(s) base and drops trailing slashes', async (t) => {
  t.equal(normalizePublicUrl('https://a.example/'), 'https://a.example')
  t.equal(normalizePublicUrl('http://a.example:8080/base//'), 'http://a.example:8080/base')
  t.throws(() => normalizePublicUrl('ftp://a.example'), /http/)
  t.throws(() => normalizePublicUrl('https://a.example/#x'), /fragment/)
  t.throws(() => normalizePublicUrl('https://u:p@a.example'), /credentials/)
  t.throws(() => normalizePublicUrl('nope'), TypeError)
})

t.test('verifyTwilioSignature tries every token and never throws', async (t) => {
  const params = { Body: 'hi', Tag: ['b', 'a'] }
  const url = 'https://h.example:8443/webhooks/sms'
  const signature = getExpectedTwilioSignature('tok-2', url, params)
  t.ok(verifyTwilioSignature(validateRequest, ['tok-1', 'tok-2'], signature, url, params))
  t.notOk(verifyTwilioSignature(validateRequest, ['tok-1'], signature, url, params))
  t.notOk(verifyTwilioSignature(validateRequest, ['tok-2'], signature, 'https://h.example/webhooks/sms', params), 'the signed port matters')
  t.notOk(verifyTwilioSignature(validateRequest, ['tok-2'], undefined, url, params))
  t.notOk(verifyTwilioSignature(validateRequest, ['tok-2'], '', url, params))
  t.notOk(verifyTwilioSignature(validateRequest, ['tok-2'], 'x', 'not a url', params), 'a malformed URL is just invalid')
})

t.test('escapeXml escapes markup and drops characters XML cannot carry', async (t) => {
  t.equal(escapeXml('<a href="x">Tom & \'Jerry\'</a>'), '&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;')
  t.equal(escapeXml('a\u0000b\u0008c\td\ne\rf\uFFFEg'), 'abc\td\ne\rfg')
  t.equal(escapeXml('emoji 😀 ok'), 'emoji 😀 ok', 'surrogate pairs stay')
  t.equal(escapeXml('lone \uD800 high \uDC00 low'), 'lone  high  low')
  t.equal(messagingResponse(), '<?xml version="1.0" encoding="UTF-8"?><Response/>')
  t.equal(messagingResponse(['a<', 'b']), '<?xml version="1.0" encoding="UTF-8"?><Response><Message>a&lt;</Message><Message>b</Message></Response>')
})

t.test('isE164 accepts +country number up to 15 digits only', async (t) => {
  for (const ok of ['+15551234567', '+442071838750', '+12', '+123456789012345']) t.ok(isE164(ok), ok)
  for (const bad of ['15551234567', '+0123456', '+1', '+1234567890123456', '+1 555 123', 'whatsapp:+15551234567', 42, undefined]) {
    t.notOk(isE164(bad), String(bad))
  }
})

t.test('the inbound schema types Twilio fields and reports what is wrong', async (t) => {
  const parsed = InboundSmsSchema.parse({ SmsSid: 'SMx', From: '+1', To: '+2', NumMedia: '1', MediaUrl0: 'u', Extra: 'kept out' })
  t.same(parsed, { sid: 'SMx', from: '+1', to: '+2', body: '', numMedia: 1, media: [{ url: 'u' }] })
  t.notOk(InboundSmsSchema.safeParse({ MessageSid: 'SMx', From: ['+1', '+3'], To: '+2' }).success, 'a repeated From is refused')
  t.notOk(InboundSmsSchema.safeParse({ MessageSid: 'SMx', From: '+1', To: '+2', NumMedia: 'many' }).success)
  t.notOk(InboundSmsSchema.safeParse(null).success)
  const status = SmsStatusSchema.parse({ MessageSid: 'SMx', MessageStatus: 'failed', To: '+2', ErrorCode: '30007' })
  t.same(status, { sid: 'SMx', status: 'failed', to: '+2', from: null, errorCode: 30007 })
  t.notOk(SmsStatusSchema.safeParse({ MessageSid: 'SMx', To: '+2' }).success, 'a status is required')
})
