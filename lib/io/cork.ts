import { Socket } from 'node:net'

/** sockets corked by corkForTick in this tick, with what runs once they are uncorked */
const corked = new WeakMap<Socket, Set<() => void>>()

/**
 * Corks `socket` until the end of the current tick, so a burst of publishes in one tick leaves each connection as one
 * `writev` instead of one syscall per event (node:http's `res.write` does the same). Only plain sockets: an HTTP/2
 * stream or a test double is left alone, and a socket someone else corked stays theirs.
 */
export function corkForTick (target: unknown): void {
  if (!(target instanceof Socket) || corked.has(target) || target.writableCorked > 0 || target.destroyed) return
  target.cork()
  corked.set(target, new Set())
  process.nextTick(uncork, target)
}

/**
 * While a socket is corked for the tick, everything written to it counts as unsent (`writableLength`), so a send
 * buffer bound must be checked after the uncork: registers `check` to run once then and returns true; returns false
 * when the socket is not corked here (check now).
 */
export function whenUncorked (target: unknown, check: () => void): boolean {
  const callbacks = target instanceof Socket ? corked.get(target) : undefined
  if (callbacks === undefined) return false
  callbacks.add(check)
  return true
}

function uncork (socket: Socket): void {
  const callbacks = corked.get(socket)
  corked.delete(socket)
  socket.uncork()
  for (const check of callbacks ?? []) check()
}
