import type { WebSocket } from 'ws'

/** Closes `sockets` with `code` and resolves when all are closed, terminating the ones still open after `timeoutMs`. */
export async function closeSockets (sockets: readonly WebSocket[], code: number, reason: string, timeoutMs: number): Promise<void> {
  const waiting = sockets.filter((socket) => socket.readyState !== 3)
  if (waiting.length === 0) return
  await new Promise<void>((resolve) => {
    let left = waiting.length
    const timer = setTimeout(() => {
      for (const socket of waiting) if (socket.readyState !== 3) socket.terminate()
    }, timeoutMs)
    const done = () => {
      if (--left === 0) {
        clearTimeout(timer)
        resolve()
      }
    }
    for (const socket of waiting) {
      socket.once('close', done)
      if (socket.readyState === 1) socket.close(code, reason)
    }
  })
}
