/**
 * Builds the browser client from its TypeScript sources (lib/client/) into one ES module and its types:
 * public/client.js (esbuild: one file, ES2022, not minified so it stays readable when served) and public/client.d.ts
 * (the declarations tsc emits, bundled into one file by dts-bundle-generator).
 *
 *   npm run build:client                    # writes public/client.js and public/client.d.ts
 *   tsx lib/client/build.ts <outDir>       # writes them elsewhere (test/client-build.test.ts compares the two)
 *
 * Both files are committed; the test fails when they differ from a fresh build of the sources.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { generateDtsBundle } from 'dts-bundle-generator'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLIENT_SOURCE = join(ROOT, 'lib', 'client')
export const PUBLIC_DIR = join(ROOT, 'public')

const BANNER = [
  '// fastify-gateways browser client. Generated from lib/client/*.ts by `npm run build:client`: edit the sources,',
  '// not this file. Specification: docs/protocol.md; usage: docs/client.md. MIT License.'
].join('\n')

export interface ClientBuild {
  js: string
  dts: string
}

/** The built client as text (nothing written). */
export async function buildClient (): Promise<ClientBuild> {
  const result = await build({
    entryPoints: [join(CLIENT_SOURCE, 'index.ts')],
    tsconfig: join(CLIENT_SOURCE, 'tsconfig.json'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    legalComments: 'none',
    banner: { js: BANNER },
    write: false,
    logLevel: 'silent'
  })
  const js = result.outputFiles[0].text
  const [bundle] = generateDtsBundle([{
    filePath: join(CLIENT_SOURCE, 'index.ts'),
    output: { noBanner: true, exportReferencedTypes: false }
  }], { preferredConfigPath: join(CLIENT_SOURCE, 'tsconfig.json') })
  return { js, dts: `${BANNER}\n${bundle}` }
}

/** Builds the client into `outDir` (default public/) as client.js and client.d.ts. */
export async function writeClient (outDir: string = PUBLIC_DIR): Promise<ClientBuild> {
  const built = await buildClient()
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'client.js'), built.js)
  writeFileSync(join(outDir, 'client.d.ts'), built.dts)
  return built
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outDir = process.argv[2] === undefined ? PUBLIC_DIR : resolve(process.argv[2])
  writeClient(outDir).then(({ js, dts }) => {
    process.stdout.write(`client.js ${Buffer.byteLength(js)} bytes, client.d.ts ${Buffer.byteLength(dts)} bytes in ${outDir}\n`)
  }, (err: unknown) => {
    process.stderr.write(`build-client: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
