#!/usr/bin/env node
// `npx fastify-gateways`: the server of server.ts, configured from the environment (docs/configuration.md).
// A configuration error is one line on stderr and exit code 1; SIGINT/SIGTERM close gracefully.
import { main } from '../server.js'

main().catch((err: unknown) => {
  process.stderr.write(`fastify-gateways: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
