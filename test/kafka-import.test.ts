import t from 'tap'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'

// CommonJS modules (kafkajs is one) land in the CommonJS cache when they are loaded, also through import().
const require = createRequire(import.meta.url)
const kafkajsDir = dirname(require.resolve('kafkajs'))
const kafkajsLoaded = () => Object.keys(require.cache).some((file) => file.startsWith(kafkajsDir))

t.test('importing the library and registering nothing does not load kafkajs', async (t) => {
  const library = await import('../index.js')
  t.type(library.kafkaGateway, 'function', 'the kafka gateway is exported')
  t.notOk(kafkajsLoaded(), 'kafkajs is not loaded')
  // the check sees kafkajs once something loads it
  await import('kafkajs')
  t.ok(kafkajsLoaded(), 'kafkajs shows up once loaded')
})
