import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { requireTool } from './tools.js'
import { freePort, until } from './redis.js'

/**
 * A real nginx (Debian's nginx-light 1.22) in front of an app on loopback, for one test file, run from a temporary
 * config: `daemon off`, pid, temp paths and error log in a temp directory, listening on 127.0.0.1.
 * `locations(upstream)` writes the `location` blocks (the test chooses buffering, gzip, headers). It runs under a
 * shell watchdog that kills it when the watchdog's stdin closes (the test process ended for any reason);
 * `gracefulStop()` sends SIGQUIT (nginx's graceful shutdown) and waits for the master to exit.
 */
export interface Nginx {
  readonly port: number
  readonly base: string
  /** what nginx wrote to stderr so far (its error log) */
  log (): string
  /** SIGQUIT to the master, then waits (bounded) for nginx to exit */
  gracefulStop (timeoutMs?: number): Promise<void>
}

export interface NginxOptions {
  /** the `server { }` body after `listen`, given the app's `host:port` */
  server: (upstream: string) => string
  /** `worker_shutdown_timeout`: how long a graceful stop waits for open (e.g. upgraded) connections */
  shutdownTimeout?: string
}

// nginx runs as the shell's child; SIGQUIT on stdin EOF is its graceful stop, SIGTERM after the trap its fast one
const WATCHDOG = 'nginx "$@" & pid=$!; trap \'kill -TERM $pid 2>/dev/null\' EXIT; cat >/dev/null; kill -QUIT $pid 2>/dev/null; wait $pid'

function healthThrough (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode === 200) })
    })
    req.on('error', () => { resolve(false) })
    req.on('timeout', () => { req.destroy() })
    req.end()
  })
}

export async function startNginx (t: Pick<Test, 'after'>, appPort: number, options: NginxOptions): Promise<Nginx | null> {
  const bin = requireTool(t as unknown as Parameters<typeof requireTool>[0], 'nginx', ['/usr/sbin/nginx'])
  if (bin === null) return null
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'gw-nginx-'))
  // run as root, nginx's workers switch to `nobody`: they must reach the temp paths inside
  await chmod(dir, 0o755)
  const config = join(dir, 'nginx.conf')
  await writeFile(config, `
daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log stderr notice;
worker_shutdown_timeout ${options.shutdownTimeout ?? '2s'};
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
${options.server(`127.0.0.1:${appPort}`)}
  }
}
`)
  const chunks: string[] = []
  // -e stderr: the log nginx writes before it has read the config (else /var/log/nginx/error.log); -p: the prefix
  const proc: ChildProcess = spawn('sh', ['-c', WATCHDOG.replace('nginx "$@"', `${bin} "$@"`), 'watchdog', '-e', 'stderr', '-p', dir, '-c', config],
    { stdio: ['pipe', 'ignore', 'pipe'] })
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => { chunks.push(chunk) })
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  let stopped = false
  t.after(async () => {
    proc.stdin?.end()
    const killer = setTimeout(() => { proc.kill('SIGKILL') }, 5000)
    await exited
    clearTimeout(killer)
    await rm(dir, { recursive: true, force: true })
  })
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${chunks.join('').slice(-2000)}`)
    return await healthThrough(port)
  }, 10_000, `nginx on 127.0.0.1:${port} proxying /health`)
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    log: () => chunks.join(''),
    gracefulStop: async (timeoutMs = 10_000) => {
      if (stopped) return
      stopped = true
      // the watchdog turns the end of its stdin into SIGQUIT to nginx, the master's graceful shutdown
      proc.stdin?.end()
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([exited, new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => { reject(new Error(`nginx did not exit within ${timeoutMs} ms of SIGQUIT`)) }, timeoutMs)
        })])
      } finally {
        clearTimeout(timer)
      }
    }
  }
}
