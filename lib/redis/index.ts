export { RedisBus, type RedisBusOptions, type BusLogger } from './bus.js'
export { RedisDedupeStore, type RedisDedupeStoreOptions } from './dedupe.js'
export { createRedisClient, closeClient, whenReady, type RedisConnection, type RedisClientTuning } from './client.js'
