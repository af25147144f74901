import t from 'tap'
import { loadConfig, ConfigError } from '../lib/config.js'

function problem (env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  return 'no error'
}

t.test('defaults are the documented ones (docs/configuration.md)', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '0.0.0.0')
  t.same([...config.gateways], ['ws', 'sse', 'rtc'])
  t.equal(config.LOG_LEVEL, 'info')
  t.same(config.ALLOWED_ORIGINS, [])
  t.same(config.PUBLIC_ROOMS, ['public:*'])
  t.same(config.CLIENT_PUBLISH_ROOMS, ['public:demo*'], 'the demo page can publish out of the box')
  t.same(loadConfig({ CLIENT_PUBLISH_ROOMS: '' }).CLIENT_PUBLISH_ROOMS, [], 'set empty, client publishing is closed')
  t.same(loadConfig({ PUBLIC_ROOMS: ' ' }).PUBLIC_ROOMS, [], 'set empty, no room is public')
  t.equal(config.HISTORY_SIZE, 100)
  t.equal(config.REDIS_URL, undefined)
  t.equal(config.KAFKA_GROUP_ID, 'fastify-gateways')
  t.same(config.KAFKA_BRIDGE, [])
  t.equal(config.WS_MAX_PAYLOAD, 65536)
  t.equal(config.WS_PING_MS, 25000)
  t.equal(config.SSE_HEARTBEAT_MS, 15000)
  t.equal(config.trustProxy, false)
})

t.test('lists, pairs and numbers are parsed', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    GATEWAYS: ' stripe , external ,',
    ALLOWED_ORIGINS: 'https://a.example,https://b.example',
    STRIPE_WEBHOOK_SECRET: 'whsec_old,whsec_new',
    EXTERNAL_API_KEYS: 'billing=k1,crm=k2',
    EXTERNAL_WEBHOOK_SECRETS: 'github=whsec_AAAA,github=whsec_BBBB',
    KAFKA_BRIDGE: 'user.notification=user:{userId}',
    TRUST_PROXY: '2'
  })
  t.equal(config.PORT, 8080)
  t.same([...config.gateways], ['stripe', 'external'])
  t.same(config.ALLOWED_ORIGINS, ['https://a.example', 'https://b.example'])
  t.same(config.STRIPE_WEBHOOK_SECRET, ['whsec_old', 'whsec_new'])
  t.same(config.EXTERNAL_API_KEYS, [['billing', 'k1'], ['crm', 'k2']])
  t.same(config.EXTERNAL_WEBHOOK_SECRETS, [['github', 'whsec_AAAA'], ['github', 'whsec_BBBB']])
  t.same(config.KAFKA_BRIDGE, [['user.notification', 'user:{userId}']])
  t.equal(config.trustProxy, 2)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, ['10.0.0.0/8', '127.0.0.1'])
  t.equal(loadConfig({ PORT: '  ' }).PORT, 3000, 'blank is unset')
})

t.test('each malformed variable is named in one line', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'abc' }, 'PORT: must be a whole number'],
    [{ PORT: '70000' }, 'PORT: must be at most 65535'],
    [{ PORT: '1.5' }, 'PORT: must be a whole number'],
    [{ GATEWAYS: 'ws,amqp' }, 'GATEWAYS: unknown gateway "amqp" (choose from ws,sse,rtc,stripe,sms,sslcommerz,external,kafka,mqtt,nats,redis-streams)'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent'],
    [{ HISTORY_SIZE: '-1' }, 'HISTORY_SIZE: must be at least 0'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL: must be a redis:// or rediss:// URL'],
    [{ STRIPE_WEBHOOK_SECRET: 'sk_live_oops' }, 'STRIPE_WEBHOOK_SECRET: each secret must start with whsec_ (the endpoint signing secret from the Stripe dashboard)'],
    [{ STRIPE_WEBHOOK_SECRET: ',' }, 'STRIPE_WEBHOOK_SECRET: is empty'],
    [{ STRIPE_SECRET_KEY: 'pk_test_1' }, 'STRIPE_SECRET_KEY: must be a Stripe secret (sk_...) or restricted (rk_...) key'],
    [{ TWILIO_ACCOUNT_SID: 'AC123' }, 'TWILIO_ACCOUNT_SID: must be AC followed by 32 hex digits'],
    [{ TWILIO_FROM: '5551234' }, 'TWILIO_FROM: must be an E.164 number (+15551234567) or a Messaging Service SID (MG...)'],
    [{ PUBLIC_URL: 'ftp://x.example' }, 'PUBLIC_URL: must be an http(s) URL such as https://api.example.com'],
    [{ EXTERNAL_API_KEYS: 'billing' }, 'EXTERNAL_API_KEYS: each entry must be name=key'],
    [{ EXTERNAL_API_KEYS: '=k' }, 'EXTERNAL_API_KEYS: each entry must be name=key'],
    [{ EXTERNAL_WEBHOOK_SECRETS: 'github=abc' }, 'EXTERNAL_WEBHOOK_SECRETS: the entry for github must start with whsec_ followed by base64'],
    [{ KAFKA_BROKERS: 'localhost' }, 'KAFKA_BROKERS: each broker must be host:port'],
    [{ KAFKA_BRIDGE: 'user.created=user room' }, 'KAFKA_BRIDGE: the entry for user.created must be a room name with {field} placeholders']
  ]
  for (const [env, message] of cases) t.equal(problem(env), message, Object.keys(env)[0])
})

t.test('a secret an enabled gateway needs is required, by name', async (t) => {
  t.equal(problem({ GATEWAYS: 'stripe' }), 'STRIPE_WEBHOOK_SECRET: is required by the stripe gateway')
  t.equal(problem({ GATEWAYS: 'sms' }), 'TWILIO_AUTH_TOKEN: is required by the sms gateway')
  t.equal(problem({ GATEWAYS: 'external' }), 'EXTERNAL_API_KEYS: is required by the external gateway')
  t.equal(problem({ GATEWAYS: 'kafka' }), 'KAFKA_BROKERS: is required by the kafka gateway')
  t.equal(problem({ GATEWAYS: 'ws', STRIPE_WEBHOOK_SECRET: 'whsec_x' }), 'no error', 'secrets of disabled gateways are optional')
})

t.test('error messages never echo secret values', async (t) => {
  const secret = 'sk_live_THIS_MUST_NOT_LEAK'
  t.notMatch(problem({ STRIPE_WEBHOOK_SECRET: secret }), 'THIS_MUST_NOT_LEAK')
  t.notMatch(problem({ EXTERNAL_WEBHOOK_SECRETS: `s=${secret}` }), 'THIS_MUST_NOT_LEAK')
  t.notMatch(problem({ REDIS_URL: `redis//:${secret}@host` }), 'THIS_MUST_NOT_LEAK')
})
