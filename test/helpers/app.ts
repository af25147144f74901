import { Writable } from 'node:stream'
import { SignJWT } from 'jose'
import { loadConfig } from '../../lib/config.js'
import { buildApp, type BuildOptions } from '../../server.js'

export const JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256!'

/** An HS256 token for `sub`, optionally with a `rooms` claim and an expiry in seconds from now. */
export async function signToken (sub: string, claims: { rooms?: string[], expiresInS?: number } = {}, secret = JWT_SECRET): Promise<string> {
  const jwt = new SignJWT({ ...(claims.rooms === undefined ? {} : { rooms: claims.rooms }) })
    .setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt()
  if (claims.expiresInS !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + claims.expiresInS)
  return await jwt.sign(new TextEncoder().encode(secret))
}

/** Collects every log line the app writes, for "secret absent from logs" checks. */
export function logCapture () {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    }
  })
  return { stream, lines, text: () => lines.join('\n') }
}

/** server.ts's app built from an environment (as `npm start` would), with logs captured. */
export async function buildTestApp (env: Record<string, string>, options: Omit<BuildOptions, 'logStream'> = {}) {
  const logs = logCapture()
  const config = loadConfig({ LOG_LEVEL: 'info', ...env })
  const app = await buildApp(config, { ...options, logStream: logs.stream })
  return { app, logs, config }
}
