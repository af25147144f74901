/** The key of the handler that runs for every delivery, after the typed one. */
export const CATCH_ALL = '*'

/**
 * The handlers one delivery of `type` runs, in order: the one registered for its type, then the catch-all. Only own
 * keys count (a type named `toString` finds nothing), and a delivery typed `'*'` runs the catch-all once.
 */
export function handlersFor<H> (table: Readonly<Record<string, H | undefined>>, type: string): H[] {
  const out: H[] = []
  if (type !== CATCH_ALL && Object.hasOwn(table, type)) {
    const typed = table[type]
    if (typed !== undefined) out.push(typed)
  }
  const all = Object.hasOwn(table, CATCH_ALL) ? table[CATCH_ALL] : undefined
  if (all !== undefined) out.push(all)
  return out
}
