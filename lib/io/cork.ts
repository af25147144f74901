import { Socket } from 'node:net'

const CORKED = Symbol('corkedForTick')
type Corkable = Socket & { [CORKED]?: boolean }

/** sockets corked in this tick, and buffer checks waiting for them: one nextTick flushes them all */
const corked: Corkable[] = []
const afterFlush: Array<() => void> = []
let scheduled = false

/**
 * Corks `socket` until the end of the current tick, so a burst of publishes in one tick leaves each connection as one
 * `writev` instead of one syscall per event (node:http's `res.write` does the same). Only plain sockets: an HTTP/2
 * stream or a test double is left alone, and a socket someone else corked stays theirs. One `nextTick` per tick
 * uncorks every socket corked in it, so a lone publish costs no more than an uncorked write.
 */
export function corkForTick (target: unknown): void {
  if (!(target instanceof Socket)) return
  const socket = target as Corkable
  if (socket[CORKED] === true || socket.writableCorked > 0 || socket.destroyed) return
  socket.cork()
  socket[CORKED] = true
  corked.push(socket)
  if (!scheduled) {
    scheduled = true
    process.nextTick(flush)
  }
}

/** True while `target` is corked by corkForTick: whatever was written to it this tick still counts as unsent. */
export function isCorkedForTick (target: unknown): boolean {
  return target instanceof Socket && (target as Corkable)[CORKED] === true
}

/** Runs `check` once this tick's corked sockets are flushed (a send-buffer bound judged on what really waits). */
export function afterCorkedFlush (check: () => void): void {
  afterFlush.push(check)
}

function flush (): void {
  scheduled = false
  const sockets = corked.splice(0)
  for (const socket of sockets) {
    socket[CORKED] = false
    socket.uncork()
  }
  const checks = afterFlush.splice(0)
  for (const check of checks) check()
}
