import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Browser, Page } from 'playwright-core'
import { requireTool } from './tools.js'

const BASE_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost'
]

const WEBRTC_ARGS = [
  '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'
]

/**
 * Launches Debian's chromium through playwright-core with the flags verified on this machine (docs/testing.md), or skips
 * (fails under CI) when chromium is absent. `webrtc` adds the loopback WebRTC flags; `WebRtcHideLocalIpsWithMdns`
 * is appended to Playwright's own --disable-features list rather than replacing it.
 */
export async function launchChromium (t: Parameters<typeof requireTool>[0], options: { webrtc?: boolean } = {}): Promise<Browser | null> {
  const executablePath = requireTool(t, 'chromium', ['/usr/bin/chromium'])
  if (executablePath === null) return null
  const { chromium } = await import('playwright-core')
  const args = [...BASE_ARGS]
  let ignoreDefaultArgs: string[] | undefined
  if (options.webrtc === true) {
    const defaults = playwrightDisabledFeatures()
    ignoreDefaultArgs = [`--disable-features=${defaults.join(',')}`]
    args.push(...WEBRTC_ARGS, `--disable-features=${[...defaults, 'WebRtcHideLocalIpsWithMdns'].join(',')}`)
  }
  return await chromium.launch({ executablePath, headless: true, args, ...(ignoreDefaultArgs === undefined ? {} : { ignoreDefaultArgs }) })
}

/** Playwright's own --disable-features list, read from its bundle (it is not exported). */
function playwrightDisabledFeatures (): string[] {
  const require = createRequire(import.meta.url)
  const bundle = readFileSync(require.resolve('playwright-core/lib/coreBundle'), 'utf8')
  const block = /disabledFeatures = \[([\s\S]*?)\];/.exec(bundle)
  if (block === null) throw new Error('cannot find Playwright\'s disabledFeatures list; update test/helpers/chromium.ts')
  return [...block[1].replace(/\/\/.*$/gm, '').matchAll(/"([^"]+)"/g)].map((m) => m[1])
}

/**
 * A page in a fresh browser context at `url` (an address of the app's origin, so the page's Origin header passes the
 * default same-origin rule); page errors go to stderr.
 */
export async function openPage (browser: Browser, url: string): Promise<Page> {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on('pageerror', (err) => { process.stderr.write(`page error: ${err.message}\n`) })
  await page.goto(url)
  return page
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`${what} not within ${ms} ms`)) }, ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}
