import { createHmac, randomBytes } from 'node:crypto'

/**
 * ICE server lists with time-limited TURN credentials in the form of the "TURN REST API" (draft-uberti-behave-turn-rest),
 * which coturn accepts with `use-auth-secret` + `static-auth-secret`: the username is `<expiry unix seconds>:<user>`
 * and the password is base64(HMAC-SHA1(secret, username)). coturn recomputes the HMAC and refuses the username
 * once its expiry has passed, so the secret itself never leaves the server.
 */

export interface IceServerConfig {
  /** `stun:`/`stuns:` URLs, served as one entry without credentials */
  stunUrls: readonly string[]
  /** `turn:`/`turns:` URLs, served as one entry with credentials; only when `turnSecret` is set */
  turnUrls: readonly string[]
  /** coturn's `static-auth-secret` */
  turnSecret?: string
  /** lifetime of issued credentials in seconds */
  turnTtlS: number
}

/** An RTCIceServer as `new RTCPeerConnection({ iceServers })` takes it. */
export interface IceServer {
  urls: string[]
  username?: string
  credential?: string
}

export interface TurnCredentials {
  username: string
  credential: string
  /** unix seconds after which the TURN server refuses them */
  expiresAt: number
}

/** base64(HMAC-SHA1(secret, username)): the TURN REST API password of `username`. */
export function turnPassword (secret: string, username: string): string {
  return createHmac('sha1', secret).update(username, 'utf8').digest('base64')
}

/** Credentials for `user` valid for `ttlS` seconds from `nowMs`. */
export function turnCredentials (secret: string, user: string, ttlS: number, nowMs = Date.now()): TurnCredentials {
  const expiresAt = Math.floor(nowMs / 1000) + ttlS
  const username = `${expiresAt}:${user}`
  return { username, credential: turnPassword(secret, username), expiresAt }
}

/** The user part for a caller without an identity: random, so two anonymous callers never share a TURN username. */
export function anonymousTurnUser (): string {
  return `anon-${randomBytes(8).toString('hex')}`
}

/** The ICE servers for `user`: STUN as configured, TURN only with a secret (fresh credentials each call). */
export function iceServersFor (config: IceServerConfig, user: string, nowMs = Date.now()): IceServer[] {
  const servers: IceServer[] = []
  if (config.stunUrls.length > 0) servers.push({ urls: [...config.stunUrls] })
  if (config.turnUrls.length > 0 && config.turnSecret !== undefined) {
    const { username, credential } = turnCredentials(config.turnSecret, user, config.turnTtlS, nowMs)
    servers.push({ urls: [...config.turnUrls], username, credential })
  }
  return servers
}
