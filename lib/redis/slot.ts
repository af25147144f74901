/**
 * Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of the part between the first `{` and the next `}` when
 * that part is not empty (a hash tag), modulo 16384. Keys and shard channels of one room share the tag `{<room>}`,
 * so they live on one shard and one script can touch all of them.
 */
const TABLE = new Uint16Array(256)
for (let i = 0; i < 256; i++) {
  let crc = i << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  TABLE[i] = crc
}

export function keySlot (key: string): number {
  let start = 0
  let end = key.length
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) {
      start = open + 1
      end = close
    }
  }
  const bytes = Buffer.from(key.slice(start, end), 'utf8')
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]
  return crc & 16383
}
