// Loaded into server.ts by bench/streams.ts (BENCH_STREAM_PROFILE=<dir>) through NODE_OPTIONS, where Node 20 refuses
// --cpu-prof: profiles the whole process with the inspector and writes <dir>/<BENCH_PROFILE_NAME>.cpuprofile (for
// Chrome DevTools or `node --import tsx bench/lib/cpu-summary.ts <file>`) when the process exits.
import { Session } from 'node:inspector'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.env.BENCH_PROFILE_DIR
if (dir !== undefined) {
  const session = new Session()
  session.connect()
  session.post('Profiler.enable')
  session.post('Profiler.setSamplingInterval', { interval: 200 })
  session.post('Profiler.start')
  process.once('exit', () => {
    // an in-process session answers synchronously, so the profile is written before the process ends
    session.post('Profiler.stop', (err, result) => {
      if (err === null) writeFileSync(join(dir, `${process.env.BENCH_PROFILE_NAME ?? process.pid}.cpuprofile`), JSON.stringify(result.profile))
    })
  })
}
