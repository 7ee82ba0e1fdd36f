/**
 * Runs a batch of tasks a bounded number at a time, where two tasks that
 * share a key run one after the other, in batch order. Tasks on disjoint
 * keys overlap freely; the order of each key's tasks is the order of the
 * batch, never the order in which database round-trips happen to finish.
 */

/** At most `limit` tasks at once; waiting tasks start in the order they asked. */
function createLimiter (limit: number): <R>(task: () => Promise<R>) => Promise<R> {
  let active = 0
  const waiting: Array<() => void> = []
  return async <R>(task: () => Promise<R>): Promise<R> => {
    if (active < limit) {
      active++
    } else {
      // The task that ends hands its slot over: `active` stays as it is.
      await new Promise<void>((resolve) => waiting.push(resolve))
    }
    try {
      return await task()
    } finally {
      const next = waiting.shift()
      if (next === undefined) active--
      else next()
    }
  }
}

/**
 * Each task waits for the tasks before it that share one of its keys to
 * settle, then for a free slot (waiting for a slot only once its turn has
 * come, so a slot is never held by a task that cannot run). Answers every
 * task's outcome, in batch order.
 */
export async function runInKeyOrder<T, R> (
  items: readonly T[],
  keysOf: (item: T) => readonly string[],
  concurrency: number,
  run: (item: T, index: number) => Promise<R>
): Promise<Array<PromiseSettledResult<R>>> {
  const limit = createLimiter(concurrency)
  const lastByKey = new Map<string, Promise<unknown>>()
  const runs = items.map(async (item, index) => {
    const keys = keysOf(item)
    const before = keys.flatMap((key) => lastByKey.get(key) ?? [])
    const done = (async () => {
      await Promise.allSettled(before)
      return await limit(async () => await run(item, index))
    })()
    for (const key of keys) lastByKey.set(key, done)
    return await done
  })
  return await Promise.allSettled(runs)
}
