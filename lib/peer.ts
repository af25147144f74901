import { GatewayErrors } from './errors.js'

/**
 * Loads an optional peer dependency (a provider SDK or broker client) the first time a gateway needs it, so a host
 * that does not register that gateway never installs or loads it. A missing package fails the gateway's `register`
 * with GW_MISSING_PEER naming the package to install; any other load error is passed on as is.
 *
 *   const { Kafka } = await loadPeer<typeof import('kafkajs')>('kafkajs', 'kafka', () => import('kafkajs'))
 *
 * `load` is the gateway's own `() => import('<pkg>')`, so bundlers and type checkers see a literal specifier.
 */
export async function loadPeer<T> (pkg: string, gateway: string, load: () => Promise<unknown>): Promise<T> {
  let mod: unknown
  try {
    mod = await load()
  } catch (err) {
    if (isMissing(err, pkg)) throw Object.assign(new GatewayErrors.MISSING_PEER(gateway, pkg, pkg), { cause: err })
    throw err
  }
  // CommonJS packages arrive as { default: module.exports } under ESM; named exports may or may not be hoisted
  const record = mod as { default?: unknown }
  return (record.default !== undefined && typeof record.default === 'object' ? { ...record.default, ...record } : mod) as T
}

function isMissing (err: unknown, pkg: string): boolean {
  const e = err as { code?: string, message?: string }
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    typeof e.message === 'string' && e.message.includes(`'${pkg}`)
}
