/**
 * Inbound JSON that is safe to handle: bounded nesting (docs/security.md, "Inbound JSON").
 *
 * `JSON.parse` reads any depth, but much of what follows a parse recurses: `JSON.stringify` of the data at publish,
 * canonical JSON for Idempotency-Key fingerprints, schema validators, loggers. 32,000 nested arrays in a 64 KB frame
 * overflow the stack in any of them ("Maximum call stack size exceeded"). Everything a client sends is therefore
 * refused past `MAX_JSON_DEPTH` levels, as a bad request, before anything else touches it.
 */

/** The deepest nesting of objects and arrays accepted in inbound JSON (a ws/rtc frame counts its own envelope). */
export const MAX_JSON_DEPTH = 128

/**
 * True when `value` nests objects and arrays more than `maxDepth` levels deep (a scalar is depth 0, `[]` depth 1).
 * Iterative, so it cannot overflow the stack itself. `textLength`, the length of the JSON text `value` came from,
 * skips the walk when the text is too short to nest that deep (each level takes at least two characters).
 */
export function isTooDeep (value: unknown, maxDepth = MAX_JSON_DEPTH, textLength = Infinity): boolean {
  if (textLength < 2 * (maxDepth + 1)) return false
  if (value === null || typeof value !== 'object') return false
  const stack: unknown[] = [value]
  const depths: number[] = [1]
  while (stack.length > 0) {
    const node = stack.pop() as object
    const depth = depths.pop() as number
    if (depth > maxDepth) return true
    const children = Array.isArray(node) ? node : Object.values(node)
    for (const child of children) {
      if (child !== null && typeof child === 'object') {
        stack.push(child)
        depths.push(depth + 1)
      }
    }
  }
  return false
}

/** The message of a refusal for too deep JSON, the same on every transport. */
export function tooDeepMessage (maxDepth = MAX_JSON_DEPTH): string {
  return `JSON nested deeper than ${maxDepth} levels`
}
