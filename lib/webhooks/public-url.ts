import { z } from 'zod'

/** Normalises a configured public base URL: an http(s) origin with an optional path, no query, no trailing slash. */
export function normalizePublicUrl (value: string): string {
  const url = new URL(value)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must be an http(s) URL')
  if (url.search !== '' || url.hash !== '') throw new Error('must not have a query string or fragment')
  if (url.username !== '' || url.password !== '') throw new Error('must not carry credentials')
  return value.trim().replace(/\/+$/, '')
}

/**
 * The `publicUrl` option of the webhook gateways (`PUBLIC_URL` in server.ts): the externally visible base URL,
 * normalised; what the provider was told to call is this plus the route's path.
 */
export const publicUrlOption = z.string().transform((value, ctx) => {
  try {
    return normalizePublicUrl(value)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof TypeError ? 'must be an http(s) URL such as https://api.example.com' : (err as Error).message })
    return z.NEVER
  }
})
